/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker audit grep --accessor cba_... FILE...: print a token's audit
 * records.  The log holds accessors only as keyed hashes ("hk1:...", a
 * different one in each segment), so this reads the files for their
 * segments' log ids, asks the broker (admin.sock, POST
 * /v1/admin/audit/idhash) for the accessor's hash in each, and prints the
 * lines of each segment that carry its hash.  Exit 0 when a line matched,
 * 1 when none did (as grep), other codes as usual.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "credbroker.h"

#define GREP_FILES_MAX 64
#define GREP_LOGS_MAX 1024
#define LINE_MAX_BYTES (64 * 1024) /* the daemon's record cap */

static const char usage[] = "usage: credbroker audit grep --accessor cba_... FILE...\n"
                            "  Print the audit records of one token (files oldest first), although the log\n"
                            "  holds its accessor only as a keyed hash per segment: the broker (admin.sock)\n"
                            "  computes the hash for each segment found in the files.  Exit 0 when records\n"
                            "  were found, 1 when none were.\n";

/* The log id of an "audit.begin" line, or NULL. */
static char *begin_log(const char *line) {
        json_t *o;
        char *r = NULL;

        if (!strstr(line, "\"audit.begin\""))
                return NULL;
        o = json_loads(line, 0, NULL);
        if (json_is_object(o) && json_is_string(json_object_get(o, "log")) &&
            strcmp(json_string_value(json_object_get(o, "type")) ?: "", "audit.begin") == 0)
                r = strdup(json_string_value(json_object_get(o, "log")));
        json_decref(o);
        return r;
}

/* Call fn on each line (without its newline) of each file; lines longer
 * than a record are skipped. */
static int each_line(char **files, int n, int (*fn)(const char *line, void *ud), void *ud) {
        char *buf = NULL;
        size_t cap = 0;

        for (int i = 0; i < n; i++) {
                FILE *f = fopen(files[i], "re");
                ssize_t k;

                if (!f) {
                        int e = errno;
                        free(buf);
                        return cli_fail(-e, "audit grep: %s: %s", files[i], strerror(e));
                }
                while ((k = getline(&buf, &cap, f)) >= 0) {
                        int r;
                        if (k > LINE_MAX_BYTES)
                                continue;
                        if (k && buf[k - 1] == '\n')
                                buf[k - 1] = 0;
                        if ((r = fn(buf, ud)) != 0) {
                                fclose(f);
                                free(buf);
                                return r;
                        }
                }
                fclose(f);
        }
        free(buf);
        return 0;
}

struct collect {
        json_t *logs;
};

static int collect_log(const char *line, void *ud) {
        struct collect *c = ud;
        char *l = begin_log(line);

        if (l && json_array_size(c->logs) < GREP_LOGS_MAX)
                json_array_append_new(c->logs, json_string(l));
        free(l);
        return 0;
}

struct match {
        json_t *hashes;     /* log id -> "hk1:..." */
        const char *cur;    /* the current segment's hash, NULL before the first header */
        char *cur_log;
        unsigned long found;
};

static int match_line(const char *line, void *ud) {
        struct match *m = ud;
        char *l = begin_log(line);

        if (l) {
                free(m->cur_log);
                m->cur_log = l;
                m->cur = json_string_value(json_object_get(m->hashes, l));
        }
        if (m->cur && strstr(line, m->cur)) {
                puts(line);
                m->found++;
        }
        return 0;
}

int cli_audit_grep(int argc, char **argv) {
        const char *acc = NULL;
        struct collect col = { NULL }; /* allocated once the arguments are checked */
        struct match m = { 0 };
        char *body = NULL, *text = NULL;
        json_t *req = NULL, *ans = NULL;
        cb_client *c = NULL;
        int i = 1, r;

        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
                return fputs(usage, stdout), CB_EXIT_OK;
        if (argc >= 3 && strcmp(argv[1], "--accessor") == 0) {
                acc = argv[2];
                i = 3;
        } else if (argc >= 2 && strncmp(argv[1], "--accessor=", 11) == 0) {
                acc = argv[1] + 11;
                i = 2;
        }
        if (!acc || strncmp(acc, "cba_", 4) != 0 || strlen(acc) > 64)
                return cli_usage("audit grep needs --accessor cba_... first");
        if (argc - i < 1 || argc - i > GREP_FILES_MAX)
                return cli_usage("audit grep takes 1 to %d FILEs", GREP_FILES_MAX);
        col.logs = json_array();
        if (!col.logs)
                return cli_fail(-ENOMEM, "out of memory");
        r = each_line(argv + i, argc - i, collect_log, &col);
        if (r)
                goto out;
        req = json_pack("{s:s, s:O}", "id", acc, "logs", col.logs);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body) {
                r = cli_fail(-ENOMEM, "out of memory");
                goto out;
        }
        r = cli_connect(1, &c);
        if (r < 0) {
                r = -r;
                goto out;
        }
        r = cb_client_request(c, "POST", "/v1/admin/audit/idhash", body, strlen(body), &text, NULL);
        if (r < 0) {
                r = cli_fail_client(r, c, "audit grep");
                goto out;
        }
        ans = json_loads(text, 0, NULL);
        m.hashes = json_object_get(ans, "hashes");
        if (!json_is_object(m.hashes)) {
                r = cli_fail(-EPROTO, "audit grep: malformed answer from the broker");
                goto out;
        }
        r = each_line(argv + i, argc - i, match_line, &m);
        if (r)
                goto out;
        r = m.found ? CB_EXIT_OK : CB_EXIT_FAIL;
out:
        free(m.cur_log);
        json_decref(ans);
        free(text);
        free(body);
        json_decref(req);
        json_decref(col.logs);
        cb_client_free(c);
        return r;
}
