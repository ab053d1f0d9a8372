/* SPDX-License-Identifier: Apache-2.0 */
/* broker/metrics.c: counting, the cap on label sets, the exposition text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbtest.h"
#include "metrics.h"

static char *render(void) {
        metrics_gauges g = { .tokens = 3, .secrets = 2, .approvals_pending = 1, .connections_refused = 4,
                             .uptime_s = 5, .store_generation = 6 };
        size_t len = 0;
        char *t = metrics_render(&g, &len);

        ASSERT_TRUE(t != NULL);
        ASSERT_EQ(strlen(t), len);
        return t;
}

TEST(counts_and_format) {
        metrics_request("token", 201);
        metrics_request("token", 201);
        metrics_request("token", 403);
        metrics_request(NULL, 500);
        metrics_proxy_done("openai", 200, 30 * 1000000ull);   /* 0.03 s */
        metrics_proxy_done("openai", 200, 3000 * 1000000ull); /* 3 s */
        metrics_proxy_done("openai", 0, 1000000ull);
        metrics_alert("leak");
        metrics_rotation("openai", "planned");
        metrics_rotation("openai", "planned");
        metrics_rotation("openai", "leaked");
        metrics_rotation("gh", "failed");
        metrics_leak("openai", "value");
        metrics_leak("", "token");
        metrics_audit_write_failed();
        metrics_audit_write_failed();
        char *t = render();
        ASSERT_CONTAINS(t, "credbroker_requests_total{route=\"token\",decision=\"allow\"} 2\n");
        ASSERT_CONTAINS(t, "credbroker_requests_total{route=\"token\",decision=\"deny\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_requests_total{route=\"unknown\",decision=\"deny\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_requests_total{secret=\"openai\",status=\"200\"} 2\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_requests_total{secret=\"openai\",status=\"0\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_duration_seconds_bucket{le=\"0.05\"} 2\n"); /* cumulative */
        ASSERT_CONTAINS(t, "credbroker_proxy_duration_seconds_bucket{le=\"2.5\"} 2\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_duration_seconds_bucket{le=\"5\"} 3\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_duration_seconds_bucket{le=\"+Inf\"} 3\n");
        ASSERT_CONTAINS(t, "credbroker_proxy_duration_seconds_count 3\n");
        ASSERT_CONTAINS(t, "credbroker_alerts_total{kind=\"leak\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_rotations_total{secret=\"openai\",kind=\"planned\"} 2\n");
        ASSERT_CONTAINS(t, "credbroker_rotations_total{secret=\"openai\",kind=\"leaked\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_rotations_total{secret=\"gh\",kind=\"failed\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_leaks_total{secret=\"openai\",kind=\"value\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_leaks_total{secret=\"\",kind=\"token\"} 1\n");
        ASSERT_CONTAINS(t, "credbroker_audit_write_failures_total 2\n");
        ASSERT_CONTAINS(t, "credbroker_tokens_live 3\n");
        ASSERT_CONTAINS(t, "credbroker_approvals_pending 1\n");
        ASSERT_CONTAINS(t, "credbroker_connections_refused_total 4\n");
        ASSERT_CONTAINS(t, "Connections refused: over the per-uid limit (429) or a socket's limit (503).\n");
        /* Every line: a HELP/TYPE comment or NAME{labels} VALUE. */
        for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n")) {
                if (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0)
                        continue;
                ASSERT_TRUE(strncmp(l, "credbroker_", 11) == 0);
                ASSERT_TRUE(strchr(l, ' ') != NULL);
        }
        free(t);
}

TEST(label_sets_are_capped) {
        char name[32];
        for (int i = 0; i < METRICS_SERIES_MAX + 100; i++) {
                snprintf(name, sizeof(name), "s%d", i);
                metrics_proxy_done(name, 200, 1000);
        }
        char *t = render();
        size_t n = 0;
        unsigned long long sum = 0;
        for (char *p = t; (p = strstr(p, "credbroker_proxy_requests_total{secret=\"")); p++) {
                n++;
                /* every request of the s* secrets is counted somewhere, "_other" included */
                if ((p[40] == 's' || p[40] == '_') && strstr(p, "status=\"200\"} ") < strchr(p, '\n'))
                        sum += strtoull(strchr(p, '}') + 2, NULL, 10);
        }
        ASSERT_TRUE(n <= METRICS_SERIES_MAX);
        ASSERT_CONTAINS(t, "credbroker_proxy_requests_total{secret=\"_other\",status=\"200\"} ");
        ASSERT_EQ(sum, METRICS_SERIES_MAX + 100);
        free(t);
}

TEST(request_ids_are_distinct) {
        char a[32], b[32];
        metrics_request_id(a);
        metrics_request_id(b);
        ASSERT_TRUE(a[0] == 'r' && strlen(a) > 10);
        ASSERT_TRUE(strcmp(a, b) != 0);
        ASSERT_EQ(strncmp(a, b, 9), 0); /* the same start-up prefix */
}
