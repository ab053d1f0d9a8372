/* SPDX-License-Identifier: Apache-2.0 */
/* Counters and their Prometheus rendering: see metrics.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "metrics.h"
#include "version.h"

#define LABEL_MAX 136 /* a secret name (128) and room */

typedef struct series {
        char a[LABEL_MAX], b[16]; /* two label values */
        uint64_t n;
} series;

typedef struct family {
        series s[METRICS_SERIES_MAX];
        size_t n;
} family;

/* Upstream latency buckets, seconds (le=), then +Inf. */
static const double buckets[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static struct {
        pthread_mutex_t lock;
        family requests; /* route, decision */
        family proxied;  /* secret, upstream status */
        family alerts;   /* kind, - */
        family rotations; /* secret, kind */
        family leaks;    /* secret, kind */
        uint64_t audit_failed;
        uint64_t lat_bucket[NBUCKETS + 1], lat_count;
        uint64_t lat_sum_ns;
        uint64_t id_next;
        uint32_t id_prefix;
        bool id_ready;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Under m.lock. */
static void bump(family *f, const char *a, const char *b) {
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->s[i].a, a) == 0 && strcmp(f->s[i].b, b) == 0) {
                        f->s[i].n++;
                        return;
                }
        /* Past the cap everything new is counted under "_other" (the last
         * slots are kept for it); an "_other" that finds no room is dropped. */
        if (f->n >= METRICS_SERIES_MAX - 4 && strcmp(a, "_other") != 0) {
                bump(f, "_other", b);
                return;
        }
        if (f->n == METRICS_SERIES_MAX)
                return;
        snprintf(f->s[f->n].a, sizeof(f->s[f->n].a), "%s", a);
        snprintf(f->s[f->n].b, sizeof(f->s[f->n].b), "%s", b);
        f->s[f->n++].n = 1;
}

void metrics_request(const char *route, unsigned status) {
        pthread_mutex_lock(&m.lock);
        bump(&m.requests, route ? route : "unknown", status < 300 ? "allow" : "deny");
        pthread_mutex_unlock(&m.lock);
}

void metrics_proxy_done(const char *secret, unsigned status, uint64_t ns) {
        char st[16];
        double s = (double)ns / 1e9;
        size_t i;

        snprintf(st, sizeof(st), "%u", status);
        pthread_mutex_lock(&m.lock);
        bump(&m.proxied, secret && *secret ? secret : "unknown", st);
        for (i = 0; i < NBUCKETS && s > buckets[i]; i++)
                ;
        m.lat_bucket[i]++;
        m.lat_count++;
        m.lat_sum_ns += ns;
        pthread_mutex_unlock(&m.lock);
}

void metrics_alert(const char *kind) {
        pthread_mutex_lock(&m.lock);
        bump(&m.alerts, kind ? kind : "unknown", "");
        pthread_mutex_unlock(&m.lock);
}

void metrics_rotation(const char *secret, const char *kind) {
        pthread_mutex_lock(&m.lock);
        bump(&m.rotations, secret && *secret ? secret : "unknown", kind);
        pthread_mutex_unlock(&m.lock);
}

void metrics_leak(const char *secret, const char *kind) {
        pthread_mutex_lock(&m.lock);
        bump(&m.leaks, secret ? secret : "", kind);
        pthread_mutex_unlock(&m.lock);
}

void metrics_audit_write_failed(void) {
        pthread_mutex_lock(&m.lock);
        m.audit_failed++;
        pthread_mutex_unlock(&m.lock);
}

void metrics_request_id(char out[32]) {
        pthread_mutex_lock(&m.lock);
        if (!m.id_ready) {
                m.id_prefix = randombytes_random();
                m.id_ready = true;
        }
        snprintf(out, 32, "r%08" PRIx32 "-%" PRIu64, m.id_prefix, ++m.id_next);
        pthread_mutex_unlock(&m.lock);
}

/* A growing text buffer; on failure it stays NULL and every append is a no-op. */
typedef struct text {
        char *p;
        size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!t->p)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        free(t->p);
                        t->p = NULL;
                        return;
                }
                if ((size_t)n < t->cap - t->len) {
                        t->len += (size_t)n;
                        return;
                }
                char *q = realloc(t->p, t->cap * 2 + (size_t)n);
                if (!q) {
                        free(t->p);
                        t->p = NULL;
                        return;
                }
                t->p = q;
                t->cap = t->cap * 2 + (size_t)n;
        }
}

static void gauge(text *t, const char *name, const char *help, uint64_t v) {
        put(t, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name, v);
}

char *metrics_render(const metrics_gauges *g, size_t *ret_len) {
        text t = { malloc(16384), 0, 16384 };
        uint64_t cum = 0;

        put(&t, "# HELP credbroker_build_info The daemon's version.\n# TYPE credbroker_build_info gauge\n"
                "credbroker_build_info{version=\"%s\"} 1\n", CB_VERSION_STRING);
        gauge(&t, "credbroker_uptime_seconds", "Seconds since the daemon started serving.", g->uptime_s);
        gauge(&t, "credbroker_tokens_live", "Tokens in the table (live, or expired less than a minute ago).",
              g->tokens);
        gauge(&t, "credbroker_secrets", "Secrets in the store.", g->secrets);
        gauge(&t, "credbroker_store_generation", "The store's commit generation (one per write).",
              g->store_generation);
        gauge(&t, "credbroker_approvals_pending", "Token requests held for an operator's decision.",
              g->approvals_pending);
        put(&t, "# HELP credbroker_connections_refused_total Connections refused: over the per-uid limit (429) "
                "or a socket's limit (503).\n"
                "# TYPE credbroker_connections_refused_total counter\ncredbroker_connections_refused_total %" PRIu64
                "\n", g->connections_refused);
        pthread_mutex_lock(&m.lock);
        put(&t, "# HELP credbroker_requests_total Requests the broker answered itself, by route and decision "
                "(2xx allow, else deny); proxied requests that reached an upstream are in "
                "credbroker_proxy_requests_total.\n# TYPE credbroker_requests_total counter\n");
        for (size_t i = 0; i < m.requests.n; i++)
                put(&t, "credbroker_requests_total{route=\"%s\",decision=\"%s\"} %" PRIu64 "\n", m.requests.s[i].a,
                    m.requests.s[i].b, m.requests.s[i].n);
        put(&t, "# HELP credbroker_proxy_requests_total Proxied requests that ended, by secret and upstream status "
                "(0: no answer from the upstream).\n# TYPE credbroker_proxy_requests_total counter\n");
        for (size_t i = 0; i < m.proxied.n; i++)
                put(&t, "credbroker_proxy_requests_total{secret=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                    m.proxied.s[i].a, m.proxied.s[i].b, m.proxied.s[i].n);
        put(&t, "# HELP credbroker_proxy_duration_seconds Proxied requests, from the decision to the end of the "
                "response.\n# TYPE credbroker_proxy_duration_seconds histogram\n");
        for (size_t i = 0; i <= NBUCKETS; i++) {
                cum += m.lat_bucket[i];
                if (i < NBUCKETS)
                        put(&t, "credbroker_proxy_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", buckets[i], cum);
                else
                        put(&t, "credbroker_proxy_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        put(&t, "credbroker_proxy_duration_seconds_sum %.6f\ncredbroker_proxy_duration_seconds_count %" PRIu64 "\n",
            (double)m.lat_sum_ns / 1e9, m.lat_count);
        put(&t, "# HELP credbroker_alerts_total Alerts raised, by kind (leak, canary, audit_write_failed, "
                "rotation_failed, denial_burst).\n# TYPE credbroker_alerts_total counter\n");
        for (size_t i = 0; i < m.alerts.n; i++)
                put(&t, "credbroker_alerts_total{kind=\"%s\"} %" PRIu64 "\n", m.alerts.s[i].a, m.alerts.s[i].n);
        put(&t, "# HELP credbroker_rotations_total Rotations, by secret and kind (planned, leaked: a new version "
                "became current; failed: stopped, the store consistent).\n# TYPE credbroker_rotations_total counter\n");
        for (size_t i = 0; i < m.rotations.n; i++)
                put(&t, "credbroker_rotations_total{secret=\"%s\",kind=\"%s\"} %" PRIu64 "\n", m.rotations.s[i].a,
                    m.rotations.s[i].b, m.rotations.s[i].n);
        put(&t, "# HELP credbroker_leaks_total Live values and tokens seen in scanned text, by secret and kind "
                "(value, canary, token), every sighting.\n# TYPE credbroker_leaks_total counter\n");
        for (size_t i = 0; i < m.leaks.n; i++)
                put(&t, "credbroker_leaks_total{secret=\"%s\",kind=\"%s\"} %" PRIu64 "\n", m.leaks.s[i].a,
                    m.leaks.s[i].b, m.leaks.s[i].n);
        put(&t, "# HELP credbroker_audit_write_failures_total Audit records that could not be written (each "
                "one's request refused).\n# TYPE credbroker_audit_write_failures_total counter\n"
                "credbroker_audit_write_failures_total %" PRIu64 "\n", m.audit_failed);
        pthread_mutex_unlock(&m.lock);
        if (t.p)
                *ret_len = t.len;
        return t.p;
}
