/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's writer side: what the writer thread (audit_queue.c) does
 * with each queue entry -- seal a record into the MAC chain and append it,
 * checkpoint the head, start segments, write and take back resume records.
 * The chain (seq, MAC, segments), the tentative resume and the file belong
 * to that thread alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "audit_format.h"
#include "audit_internal.h"
#include "log.h"

/* ---- writing (the writer thread) ---- */

static int checkpoint(void) {
        cb_audit_head h = { .set = true, .seq = audit_wr.seq };
        char text[CB_AUDIT_HEAD_TEXT_LEN];

        memcpy(h.log_id, audit_wr.log_id, sizeof(h.log_id));
        memcpy(h.mac, audit_wr.mac, sizeof(h.mac));
        cb_audit_head_encode(audit_wr.master, &h, text);
        /* Fixed length, in place: never a moment without a whole head. */
        if (pwrite(audit_wr.head_fd, text, sizeof(text), 0) != (ssize_t)sizeof(text))
                return errno ? -errno : -EIO;
        return 0;
}

static void untentative(void);

/* Seal body (a compact JSON object without "seq") as the segment's next
 * record and append it; on any failure the file is cut back to where it
 * was and the head does not move (and a tentative resume before it is
 * taken back).  The canonical text is the body with "seq" (and, for a
 * header, "offset") as its last members: what json_dumps gives for the
 * object with them added last. */
static int append_text(const char *body, size_t blen, bool begin) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        char *canon = NULL, *line = NULL, tail[64];
        size_t len;
        struct stat st;
        uint64_t seq = begin ? 0 : audit_wr.seq + 1;
        int r, tl;

        if (blen < 2 || body[0] != '{' || body[blen - 1] != '}')
                return -EINVAL;
        if (fstat(audit_wr.fd, &st) < 0)
                return -errno;
        tl = begin ? snprintf(tail, sizeof(tail), "%s\"seq\":%" PRIu64 ",\"offset\":%lld}", blen > 2 ? "," : "", seq,
                              (long long)st.st_size)
                   : snprintf(tail, sizeof(tail), "%s\"seq\":%" PRIu64 "}", blen > 2 ? "," : "", seq);
        canon = malloc(blen - 1 + (size_t)tl + 1);
        if (!canon)
                return -ENOMEM;
        memcpy(canon, body, blen - 1);
        memcpy(canon + blen - 1, tail, (size_t)tl + 1);
        len = blen - 1 + (size_t)tl;
        r = cb_audit_seal(audit_wr.keys, begin ? (const unsigned char[CB_AUDIT_MAC_LEN]){ 0 } : audit_wr.mac, canon, len,
                          mac, &line, &len);
        if (r < 0)
                goto out;
        /* One write(2) per record on an O_APPEND fd, by one thread. */
        errno = 0;
        ssize_t k = write(audit_wr.fd, line, len);
        if (k != (ssize_t)len) {
                r = k < 0 ? -errno : -ENOSPC; /* a short write on a regular file: the disk is full */
                if (k > 0 && ftruncate(audit_wr.fd, st.st_size) < 0)
                        cb_log(CB_LOG_ERR, "audit log %s: cannot cut a partial record: %s", audit_wr.path,
                               strerror(errno));
                goto out;
        }
        audit_wr.seq = seq;
        memcpy(audit_wr.mac, mac, sizeof(mac));
        audit_wr.need_begin = false;
        r = checkpoint();
        audit_sync_note_written();
        audit_publish_head();
        if (r == 0 && !audit_wr.resuming)
                audit_wr.tentative = false; /* a record followed the resume: it stands */
out:
        free(canon);
        free(line);
        if (r < 0 && audit_wr.tentative)
                untentative();
        return r;
}

/* A record the writer makes itself (header, resume, stop). */
static int append(json_t *o, bool begin) {
        struct timespec ts;
        char *body;
        int r;

        clock_gettime(CLOCK_REALTIME, &ts);
        json_object_set_new(o, "time_ms", json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
        body = json_dumps(o, JSON_COMPACT);
        if (!body)
                return -ENOMEM;
        r = append_text(body, strlen(body), begin);
        free(body);
        return r;
}

/* Remember the state resume() may have to be taken back to. */
static void tentative_begin(void) {
        struct stat st;

        audit_wr.undo.size = fstat(audit_wr.fd, &st) == 0 ? st.st_size : -1;
        audit_wr.undo.seq = audit_wr.seq;
        memcpy(audit_wr.undo.mac, audit_wr.mac, sizeof(audit_wr.mac));
        audit_wr.undo.need_begin = audit_wr.need_begin;
        pthread_mutex_lock(&audit_fail.lock);
        audit_wr.undo.failed = audit_fail.failed;
        audit_wr.undo.failed_since = audit_fail.failed_since;
        audit_wr.undo.refused_base = audit_fail.refused_base;
        memcpy(audit_wr.undo.error, audit_fail.error, sizeof(audit_fail.error));
        pthread_mutex_unlock(&audit_fail.lock);
        audit_wr.undo.head_len = pread(audit_wr.head_fd, audit_wr.undo.head, sizeof(audit_wr.undo.head), 0);
        audit_wr.tentative = audit_wr.undo.size >= 0 && audit_wr.undo.head_len >= 0;
}

/* The record after a resume could not be written: the log is still full.
 * A resume that announces a recovery which did not happen, and resets the
 * refusal count, would be a lie in the log: cut the file back to before
 * it, restore the head checkpoint and stay failed, still counting. */
static void untentative(void) {
        audit_wr.tentative = false;
        if (ftruncate(audit_wr.fd, audit_wr.undo.size) < 0) {
                cb_log(CB_LOG_ERR, "audit log %s: cannot take back a resume record: %s", audit_wr.path,
                       strerror(errno));
                return; /* the resume stays, and is true to the chain: the new failure is a new period */
        }
        if (audit_wr.undo.head_len == 0 ? ftruncate(audit_wr.head_fd, 0) < 0
                                  : pwrite(audit_wr.head_fd, audit_wr.undo.head, (size_t)audit_wr.undo.head_len, 0) !=
                                            audit_wr.undo.head_len)
                cb_log(CB_LOG_ERR, "audit head checkpoint: cannot restore it: %s", strerror(errno));
        audit_wr.seq = audit_wr.undo.seq;
        memcpy(audit_wr.mac, audit_wr.undo.mac, sizeof(audit_wr.mac));
        audit_wr.need_begin = audit_wr.undo.need_begin;
        pthread_mutex_lock(&audit_fail.lock);
        audit_fail.failed = audit_wr.undo.failed;
        audit_fail.failed_since = audit_wr.undo.failed_since;
        audit_fail.refused_base = audit_wr.undo.refused_base;
        memcpy(audit_fail.error, audit_wr.undo.error, sizeof(audit_fail.error));
        pthread_mutex_unlock(&audit_fail.lock);
        audit_sync_note_written();
        audit_publish_head();
}

static int write_begin(void) {
        char log[2 * CB_AUDIT_LOG_ID_LEN + 1], prev_log[2 * CB_AUDIT_LOG_ID_LEN + 1], prev_mac[2 * CB_AUDIT_MAC_LEN + 1];
        json_t *o;
        int r;

        sodium_bin2hex(log, sizeof(log), audit_wr.log_id, sizeof(audit_wr.log_id));
        o = json_pack("{s:s, s:I, s:s, s:s}", "type", "audit.begin", "time", (json_int_t)time(NULL), "log", log,
                      "reason", audit_wr.reason);
        if (!o)
                return -ENOMEM;
        if (audit_wr.prev.set) {
                sodium_bin2hex(prev_log, sizeof(prev_log), audit_wr.prev.log_id, sizeof(audit_wr.prev.log_id));
                sodium_bin2hex(prev_mac, sizeof(prev_mac), audit_wr.prev.mac, sizeof(audit_wr.prev.mac));
                json_object_set_new(o, "prev_log", json_string(prev_log));
                json_object_set_new(o, "prev_seq", json_integer((json_int_t)audit_wr.prev.seq));
                json_object_set_new(o, "prev_mac", json_string(prev_mac));
        }
        r = append(o, true);
        json_decref(o);
        return r;
}

/* A new segment (log_id chosen by the caller): its keys; the header is
 * written with the next record (or at once by the caller). */
static void new_segment(const unsigned char log_id[CB_AUDIT_LOG_ID_LEN], const char *reason) {
        audit_wr.tentative = false; /* a resume in the file being left stands */
        if (audit_wr.seq || !audit_wr.need_begin) {
                /* The segment being left ends here. */
                audit_wr.prev.set = true;
                memcpy(audit_wr.prev.log_id, audit_wr.log_id, sizeof(audit_wr.log_id));
                audit_wr.prev.seq = audit_wr.seq;
                memcpy(audit_wr.prev.mac, audit_wr.mac, sizeof(audit_wr.mac));
        }
        memcpy(audit_wr.log_id, log_id, sizeof(audit_wr.log_id));
        cb_audit_segment_keys(audit_wr.master, audit_wr.log_id, audit_wr.keys);
        audit_wr.seq = 0;
        memset(audit_wr.mac, 0, sizeof(audit_wr.mac));
        audit_wr.need_begin = true;
        audit_wr.reason = reason;
}

static int resume_write(void);

/* Bring the log back from the failed state: header if due, then a resume
 * record saying what was refused. */
static int resume(void) {
        int r;

        /* Tentative until the next record is written too: a resume short
         * enough to fit the last bytes of a full disk, before a record that
         * does not, must not reset the refusal count nor grow the log. */
        tentative_begin();
        audit_wr.resuming = true;
        r = resume_write();
        audit_wr.resuming = false;
        return r;
}

static int resume_write(void) {
        uint64_t since, refused;
        char err[128];
        int r;

        if (audit_wr.need_begin && (r = write_begin()) < 0)
                return r;
        pthread_mutex_lock(&audit_fail.lock);
        bool failed = audit_fail.failed;
        since = audit_fail.failed_since;
        refused = audit_fail.refused_total - audit_fail.refused_base;
        memcpy(err, audit_fail.error, sizeof(err));
        pthread_mutex_unlock(&audit_fail.lock);
        if (!failed)
                return 0;
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:s}", "type", "audit.resume", "time", (json_int_t)time(NULL),
                              "failed_since", (json_int_t)since, "refused", (json_int_t)refused, "error", err);
        if (!o)
                return -ENOMEM;
        r = append(o, false);
        json_decref(o);
        if (r < 0)
                return r;
        cb_log(CB_LOG_NOTICE, "audit log %s writable again after %" PRIu64 " refused request(s): serving",
               audit_wr.path, refused);
        pthread_mutex_lock(&audit_fail.lock);
        audit_fail.failed = false;
        audit_fail.refused_base += refused; /* those are said; any counted since go into the next period */
        pthread_mutex_unlock(&audit_fail.lock);
        return 0;
}

int audit_writer_do(audit_rec *e) {
        int r;

        switch (e->kind) {
        case AUDIT_REC_BEGIN:
                if ((r = write_begin()) < 0)
                        audit_enter_failed(r, "writing the segment header");
                return r;
        case AUDIT_REC_REOPEN:
                audit_sync_set_fds(e->fd, audit_wr.head_fd);
                close(audit_wr.fd);
                audit_wr.fd = e->fd;
                audit_set_file_identity();
                new_segment(e->log_id, "reopen");
                audit_publish_head();
                if ((r = write_begin()) < 0)
                        audit_enter_failed(r, "writing the segment header");
                return r;
        case AUDIT_REC_STOP:
                if (!audit_is_failed() && !audit_wr.need_begin) {
                        json_t *o = json_pack("{s:s, s:I}", "type", "audit.stop", "time", (json_int_t)time(NULL));
                        if (o)
                                (void)append(o, false);
                        json_decref(o);
                }
                return 0;
        default:
                break;
        }
        if ((audit_is_failed() || audit_wr.need_begin) && (r = resume()) < 0) {
                audit_enter_failed(r, "writing a record");
        } else if ((r = append_text(e->canon, e->len, false)) < 0) {
                audit_enter_failed(r, "writing a record");
        } else if (e->sync && fdatasync(audit_wr.fd) < 0) {
                /* Durable before the write it announces (the durability
                 * rule in docs/hardening-state.md). */
                r = -errno;
                audit_enter_failed(r, "syncing a record");
        }
        if (r < 0 && e->counted)
                audit_count_refused(); /* its request is refused (503): said in audit.resume */
        return r;
}
