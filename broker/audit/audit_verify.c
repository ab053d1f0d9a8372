/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verifying the audit log: POST /v1/admin/audit/verify (against the live
 * log's key and head), credbrokerd --verify-audit (offline), and the
 * keyed hash of an identifier for credbroker audit grep.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "audit_format.h"
#include "audit_internal.h"
#include "error.h"
#include "log.h"

/* ---- verification ---- */

static json_t *verdict(const cb_audit_verifier *v, const char *const *files, size_t bad_file) {
        json_t *o = json_pack("{s:b, s:I, s:I, s:b, s:s}", "intact", !v->failed, "records", (json_int_t)v->records,
                              "segments", (json_int_t)v->segments, "tail_checked", v->tail_checked, "tail",
                              v->tail_note);

        if (o && v->start_note[0])
                json_object_set_new(o, "start", json_string(v->start_note));
        if (o && v->failed) {
                json_object_set_new(o, "file", json_string(files[bad_file]));
                json_object_set_new(o, "line", json_integer((json_int_t)v->bad_line));
                json_object_set_new(o, "problem", json_string(v->problem));
        }
        return o;
}

int audit_verify_live(const char *const *files, size_t n, json_t **ret) {
        cb_audit_verifier v;
        cb_audit_head head;
        struct stat cur, last;
        size_t bad = 0;
        int r;

        if (!audit_enabled() || !audit_wr.master)
                return cb_error_set(-ENOENT, "this broker runs without --audit-log");
        if (n < 1 || n > CB_AUDIT_VERIFY_FILES_MAX)
                return cb_error_set(-EINVAL, "1 to %d files", CB_AUDIT_VERIFY_FILES_MAX);
        /* The head, and whether the last file is the log being written
         * (then it must end with the head's segment).  The master key is
         * fixed for the daemon's life. */
        pthread_mutex_lock(&audit_fail.lock);
        head = audit_fail.head; /* as written by now (records still queued are not in the file yet) */
        cur.st_dev = audit_fail.dev;
        cur.st_ino = audit_fail.ino;
        pthread_mutex_unlock(&audit_fail.lock);
        bool required = stat(files[n - 1], &last) == 0 && cur.st_dev == last.st_dev && cur.st_ino == last.st_ino;
        cb_audit_verifier_init(&v, audit_wr.master);
        r = cb_audit_verify_files(&v, files, n, &head, required, &bad);
        if (r == 0)
                *ret = verdict(&v, files, bad);
        cb_audit_verifier_done(&v);
        return r;
}

int audit_verify_offline(cb_store *store, const char *state_dir, const char *const *files, size_t n, bool json) {
        cb_audit_verifier v;
        cb_audit_head head = { 0 };
        size_t bad = 0;
        int r, status = 1;

        r = audit_load_keys(state_dir, store, false, &audit_wr.head_fd);
        if ((r < 0 && r != -ENOENT) || (r == 0 && audit_read_head(audit_wr.head_fd, &head) < 0)) {
                cb_log(CB_LOG_ERR, "audit verify: %s", cb_error_last());
                goto out;
        }
        cb_audit_verifier_init(&v, audit_wr.master);
        r = cb_audit_verify_files(&v, files, n, &head, true, &bad);
        if (r < 0) {
                cb_log(CB_LOG_ERR, "audit verify: %s", cb_error_last());
        } else if (json) { /* credbroker audit verify --json --state-dir */
                json_t *o = verdict(&v, files, bad);
                char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (t)
                        puts(t);
                else
                        cb_log(CB_LOG_ERR, "audit verify: out of memory");
                status = !t ? 1 : v.failed ? 4 : 0;
                free(t);
                json_decref(o);
        } else if (v.failed) {
                printf("NOT INTACT: %s line %" PRIu64 ": %s\n", files[bad], v.bad_line, v.problem);
                status = 4;
        } else {
                printf("intact: %" PRIu64 " records in %" PRIu64 " segment(s); %s\n", v.records, v.segments,
                       v.tail_note);
                status = 0;
        }
        cb_audit_verifier_done(&v);
out:
        if (audit_wr.head_fd >= 0)
                close(audit_wr.head_fd);
        audit_wr.head_fd = -1;
        sodium_free(audit_wr.master);
        sodium_free(audit_wr.keys);
        audit_wr.master = NULL;
        audit_wr.keys = NULL;
        return status;
}

int audit_id_hash(const char *log_hex, const char *id, char out[CB_AUDIT_ID_HASH_LEN + 1]) {
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        cb_audit_keys k;
        size_t got = 0;

        if (!audit_wr.master)
                return -ENOENT;
        if (strlen(log_hex) != 2 * CB_AUDIT_LOG_ID_LEN ||
            sodium_hex2bin(log_id, sizeof(log_id), log_hex, strlen(log_hex), NULL, &got, NULL) != 0 ||
            got != sizeof(log_id))
                return -EINVAL;
        cb_audit_segment_keys(audit_wr.master, log_id, &k);
        cb_audit_id_hash(&k, id, out);
        sodium_memzero(&k, sizeof(k));
        return 0;
}
