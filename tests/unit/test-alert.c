/* SPDX-License-Identifier: Apache-2.0 */
/* Alerts (broker/alert.c): the denial-burst rule, the hook's input (JSON,
 * never a value), and that a hanging hook neither blocks alert_raise nor
 * grows the queue past its bound. */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alert.h"
#include "cbtest.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until path has at least n lines (or 10 s); returns its text. */
static char *wait_lines(const char *path, size_t n) {
        for (int i = 0; i < 200; i++) {
                size_t len = 0, lines = 0;
                unsigned char *t = cbtest_read_file(path, &len);
                for (size_t k = 0; t && k < len; k++)
                        lines += t[k] == '\n';
                if (t && lines >= n)
                        return (char *)t;
                free(t);
                usleep(50 * 1000);
        }
        return NULL;
}

TEST(parse_rule) {
        unsigned n = 99, w = 99;

        ASSERT_OK(alert_parse_rule("10/60", &n, &w));
        ASSERT_EQ(n, 10);
        ASSERT_EQ(w, 60);
        ASSERT_OK(alert_parse_rule("off", &n, &w));
        ASSERT_EQ(n, 0);
        ASSERT_OK(alert_parse_rule("5/2m", &n, &w));
        ASSERT_EQ(w, 120);
        ASSERT_OK(alert_parse_rule("5/1d", &n, &w));
        ASSERT_EQ(w, 86400);
        static const char *const bad[] = { "", "0/60", "10/0", "10", "10/", "/60", "x/60", "10/60x", "-1/60",
                                           "1001/60", "10/86401", "10/2d", "10/1m1", "10/ 60", "10/+60", "10/m",
                                           "10/0m" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ASSERT_EQ(alert_parse_rule(bad[i], &n, &w), -EINVAL);
}

TEST(parse_seconds) {
        unsigned long v = 7;
        static const struct { const char *s; unsigned long v; } good[] = {
                { "90", 90 }, { "90s", 90 }, { "5m", 300 }, { "8h", 28800 }, { "1d", 86400 }, { "0", 0 },
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                ASSERT_OK(alert_parse_seconds(good[i].s, 86400, &v));
                ASSERT_EQ(v, good[i].v);
        }
        static const char *const bad[] = { "", "m", "-5", "+5", " 5", "5x", "5mm", "5 m", "2d", "86401",
                                           "18446744073709551616", "99999999999999999d" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = 7;
                ASSERT_EQ(alert_parse_seconds(bad[i], 86400, &v), -EINVAL);
                ASSERT_EQ(v, 7); /* nothing written */
        }
}

TEST(denial_burst_and_hook_input) {
        const char *out = cbtest_path(cbtest_tmpdir(), "alerts.jsonl");
        char cmd[4200];

        snprintf(cmd, sizeof(cmd), "cat >>'%s'", out);
        ASSERT_OK(alert_init(cmd, 5, 3, 60));
        alert_note_denial(1001, "aa", "/usr/bin/a", "token", 403);
        alert_note_denial(1001, "aa", "/usr/bin/a", "token", 403);
        alert_note_denial(1001, "bb", "/usr/bin/b", "token", 403); /* another executable: another client */
        alert_note_denial(1002, "aa", "/usr/bin/a", "token", 403);
        usleep(300 * 1000);
        ASSERT_TRUE(access(out, F_OK) != 0); /* nothing yet: two denials at most per client */
        alert_note_denial(1001, "aa", "/usr/bin/a", "redeem", 401); /* the third: alert */
        alert_note_denial(1001, "aa", "/usr/bin/a", "redeem", 401); /* suppressed for the window */
        alert_note_denial(1001, "aa", "/usr/bin/a", "redeem", 401);
        json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "name", "demo", "value", "SECRET-VALUE-XYZ", "token",
                               "cbt_SECRETTOKEN", "secret_value", "SECRET-VALUE-XYZ");
        alert_raise("leak", ev);
        json_decref(ev);
        char *t = wait_lines(out, 2);
        ASSERT_TRUE(t);
        alert_stop();
        ASSERT_TRUE(!strstr(t, "SECRET"));
        char *nl = strchr(t, '\n');
        *nl = 0;
        json_t *a = json_loads(t, 0, NULL), *b = json_loads(nl + 1, 0, NULL);
        ASSERT_TRUE(a && b);
        ASSERT_TRUE(strcmp(json_string_value(json_object_get(a, "kind")), "denial_burst") == 0);
        ASSERT_EQ(json_integer_value(json_object_get(a, "uid")), 1001);
        ASSERT_TRUE(strcmp(json_string_value(json_object_get(a, "exe_sha256")), "aa") == 0);
        ASSERT_EQ(json_integer_value(json_object_get(a, "denials")), 3);
        ASSERT_TRUE(strcmp(json_string_value(json_object_get(a, "last_route")), "redeem") == 0);
        ASSERT_TRUE(strcmp(json_string_value(json_object_get(b, "kind")), "leak") == 0);
        ASSERT_TRUE(strcmp(json_string_value(json_object_get(b, "name")), "demo") == 0);
        ASSERT_TRUE(!json_object_get(b, "value") && !json_object_get(b, "token"));
        ASSERT_TRUE(strchr(nl + 1, '\n') == strrchr(nl + 1, '\n')); /* exactly two events */
        json_decref(a);
        json_decref(b);
        free(t);
}

TEST(hanging_hook_never_blocks) {
        const char *err = cbtest_path(cbtest_tmpdir(), "stderr");
        int saved = dup(STDERR_FILENO), fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ASSERT_TRUE(saved >= 0 && fd >= 0);
        ASSERT_OK(alert_init("sleep 30", 1, 0, 0));
        fflush(stderr);
        dup2(fd, STDERR_FILENO);
        double t0 = now_s();
        for (int i = 0; i < 10 * ALERT_QUEUE_MAX; i++)
                alert_raise("test_flood", NULL);
        double raised = now_s() - t0;
        usleep(2500 * 1000); /* the first hook is killed after 1 s */
        alert_raise("test_after", NULL);
        t0 = now_s();
        alert_stop();
        double stopped = now_s() - t0;
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        ASSERT_TRUE(raised < 1.0);  /* 640 alerts, not 640 hook runs */
        ASSERT_TRUE(stopped < 2.0); /* the running hook is killed at stop */
        char *t = (char *)cbtest_read_file(err, NULL);
        ASSERT_TRUE(t);
        ASSERT_TRUE(strstr(t, "still running after 1 s: killed"));
        ASSERT_TRUE(strstr(t, "\"alerts_dropped_before\":"));
        free(t);
}

/* Accessors reach the hook only as keyed hashes (members and free text),
 * non-UTF-8 members never lose the event, and the hook has no fd past 2 and
 * only a fixed PATH in its environment. */
TEST(hook_input_hashed_env_fds) {
        const char *out = cbtest_path(cbtest_tmpdir(), "hook.txt");
        char cmd[4200];

        setenv("CB_TEST_ALERT_PARENT_ONLY", "1", 1);
        int leak = open("/dev/null", O_RDONLY); /* not CLOEXEC: the hook must not get it */
        ASSERT_TRUE(leak > 2);
        snprintf(cmd, sizeof(cmd), "exec >>'%s'; cat; echo; env | sed 's/^/ENV /'; ls -l /proc/$$/fd >'%s.fds'", out,
                 out);
        ASSERT_OK(alert_init(cmd, 5, 0, 0));
        json_t *ev = json_pack("{s:s, s:s, s:s}", "accessor", "cba_00112233445566778899aabb", "note",
                               "revoked cba_00112233445566778899aabb", "exe", "/tmp/x");
        alert_raise("leak", ev);
        json_decref(ev);
        char *t = wait_lines(out, 3);
        ASSERT_TRUE(t);
        usleep(200 * 1000);
        alert_stop();
        close(leak);
        unsetenv("CB_TEST_ALERT_PARENT_ONLY");
        free(t);
        t = (char *)cbtest_read_file(out, NULL);
        ASSERT_TRUE(t);
        ASSERT_TRUE(!strstr(t, "cba_"));
        ASSERT_TRUE(strstr(t, "\"accessor\":\"hk1:"));
        ASSERT_TRUE(strstr(t, "\"note\":\"revoked hk1:"));
        ASSERT_TRUE(strstr(t, "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
        ASSERT_TRUE(!strstr(t, "CB_TEST_ALERT_PARENT_ONLY"));
        free(t);
        char fds_path[4200];
        snprintf(fds_path, sizeof(fds_path), "%s.fds", out);
        char *fds = (char *)cbtest_read_file(fds_path, NULL);
        ASSERT_TRUE(fds);
        ASSERT_TRUE(!strstr(fds, "/dev/null")); /* fd 1 is hook.txt, 0 a pipe: /dev/null only if leaked */
        free(fds);
}

/* A flood: events of one (kind, client) fold into one hook run; other
 * clients fill the queue only up to the reserve, so a leak still gets in. */
TEST(flood_coalesced_leak_reserved) {
        const char *out = cbtest_path(cbtest_tmpdir(), "flood.txt");
        char cmd[8400];

        /* The first run holds the worker 1.5 s while the queue fills. */
        snprintf(cmd, sizeof(cmd), "cat >>'%s'; [ -e '%s.first' ] || { touch '%s.first'; sleep 1.5; }", out, out, out);
        ASSERT_OK(alert_init(cmd, 10, 0, 0));
        alert_raise("test_first", NULL);
        usleep(300 * 1000); /* the worker took it off the queue */
        for (int i = 0; i < 100; i++) {
                json_t *ev = json_pack("{s:i, s:s}", "uid", 5, "exe_sha256", "aa");
                alert_raise("denial_burst", ev);
                json_decref(ev);
        }
        for (int i = 0; i < 100; i++) {
                json_t *ev = json_pack("{s:i, s:s}", "uid", 1000 + i, "exe_sha256", "bb");
                alert_raise("denial_burst", ev);
                json_decref(ev);
        }
        json_t *ev = json_pack("{s:s}", "what", "secret");
        alert_raise("leak", ev);
        json_decref(ev);
        /* first + uid 5 (coalesced) + 47 other clients + the leak */
        char *t = wait_lines(out, 50);
        ASSERT_TRUE(t);
        usleep(300 * 1000);
        alert_stop();
        free(t);
        t = (char *)cbtest_read_file(out, NULL);
        ASSERT_TRUE(t);
        size_t lines = 0;
        for (char *p = t; *p; p++)
                lines += *p == '\n';
        ASSERT_EQ(lines, 50);
        ASSERT_TRUE(strstr(t, "\"uid\":5,\"exe_sha256\":\"aa\""));
        ASSERT_TRUE(strstr(t, "\"coalesced\":99}"));
        ASSERT_TRUE(strstr(t, "\"kind\":\"leak\""));
        free(t);
}
