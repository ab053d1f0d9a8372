/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's records, MAC chain, fail-closed state and verification
 * (see audit.h; the format is audit_format.h).  Records are made on any
 * thread under rec_lock (audit's own, held while one is hashed and queued)
 * and queued; the writer thread (audit_queue.c) writes them: the
 * chain (seq, MAC, segments), the tentative resume and the file belong to
 * that thread alone (audit_writer_do and what it calls).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "alert.h"
#include "audit.h"
#include "audit_format.h"
#include "audit_internal.h"
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "store_derive.h"

#define HEAD_FILE "audit-head"
/* A writer inside one write or sync for longer than this is stalled: new
 * requests are refused at once (503) rather than queued to wait. */
#define CB_AUDIT_STALL_MS 500

/* The writer thread's (after audit_open; before, the opener's). */
static struct {
        int fd, head_fd;
        char *path;            /* fixed from open to close */
        unsigned char *master; /* sodium_malloc: CB_AUDIT_KEY_LEN; fixed from open to close */
        cb_audit_keys *keys;   /* sodium_malloc: the current segment's (MAC) */
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t seq;          /* of the last record written in this segment */
        unsigned char mac[CB_AUDIT_MAC_LEN];
        bool need_begin;       /* the segment header is not written yet */
        const char *reason;    /* why the segment starts: "start", "reopen" */
        cb_audit_head prev;    /* where the previous segment ended */
        /* A resume (and header) written but not yet followed by a record:
         * if that record cannot be written either, the disk is still full
         * and the resume is taken back (see resume()). */
        bool tentative, resuming;
        struct {
                off_t size; /* the log's size before the resume */
                uint64_t seq, failed_since, refused_base;
                unsigned char mac[CB_AUDIT_MAC_LEN];
                bool need_begin, failed;
                char error[128];
                char head[CB_AUDIT_HEAD_TEXT_LEN];
                ssize_t head_len;
        } undo;
} au = { .fd = -1, .head_fd = -1 };

/* The records' side, under rec_lock (audit's own, held for the
 * microseconds a record is hashed and queued, never over I/O): the keys
 * identifiers are hashed under (the segment the next record goes to), and
 * the order records enter the queue in.  Any thread may make a record. */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static cb_audit_keys *id_keys; /* sodium_malloc */

/* The failed state, shared by the writer and the waiters (fail.lock). */
static struct {
        pthread_mutex_t lock;
        bool failed;
        uint64_t failed_since;
        uint64_t refused_total, refused_base; /* refused since failed_since: total - base */
        char error[128];
        /* For the verify route: the head as written, and the file. */
        cb_audit_head head;
        dev_t dev;
        ino_t ino;
} fail = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Set once the log is open, cleared at close: read without a lock. */
static atomic_bool au_on;

/* ---- the failed state ---- */

static void enter_failed(int r, const char *what) {
        char err[128];

        metrics_audit_write_failed(); /* every failed record, not only the first of a period */
        pthread_mutex_lock(&fail.lock);
        if (fail.failed) {
                pthread_mutex_unlock(&fail.lock);
                return;
        }
        fail.failed = true;
        fail.failed_since = (uint64_t)time(NULL);
        fail.refused_base = fail.refused_total;
        snprintf(fail.error, sizeof(fail.error), "%s: %s", what, strerror(-r));
        memcpy(err, fail.error, sizeof(err));
        pthread_mutex_unlock(&fail.lock);
        json_t *ev = json_pack("{s:o*, s:s}", "path", cb_json_string_lossy(au.path), "error", err);
        alert_raise("audit_write_failed", ev);
        json_decref(ev);
        cb_log(CB_LOG_ERR, "audit log %s cannot be written (%s): refusing requests until it can", au.path, err);
}

static void count_refused(void) {
        pthread_mutex_lock(&fail.lock);
        fail.refused_total++;
        pthread_mutex_unlock(&fail.lock);
}

static bool is_failed(void) {
        pthread_mutex_lock(&fail.lock);
        bool f = fail.failed;
        pthread_mutex_unlock(&fail.lock);
        return f;
}

void audit_note_timeout(void) {
        uint64_t ms = 0;

        (void)audit_queue_stalled(0, &ms);
        char what[96];
        snprintf(what, sizeof(what), "a record not written within %u ms (a write stalled for %" PRIu64 " ms)",
                 (unsigned)CB_AUDIT_WAIT_MS, ms);
        enter_failed(-ETIMEDOUT, what);
        count_refused();
}

/* The head for readers other than the writer (under fail.lock). */
static void publish_head(void) {
        pthread_mutex_lock(&fail.lock);
        if (au.need_begin) {
                fail.head = au.prev;
        } else {
                fail.head.set = true;
                memcpy(fail.head.log_id, au.log_id, sizeof(au.log_id));
                fail.head.seq = au.seq;
                memcpy(fail.head.mac, au.mac, sizeof(au.mac));
        }
        pthread_mutex_unlock(&fail.lock);
}

/* ---- writing (the writer thread) ---- */

static int checkpoint(void) {
        cb_audit_head h = { .set = true, .seq = au.seq };
        char text[CB_AUDIT_HEAD_TEXT_LEN];

        memcpy(h.log_id, au.log_id, sizeof(h.log_id));
        memcpy(h.mac, au.mac, sizeof(h.mac));
        cb_audit_head_encode(au.master, &h, text);
        /* Fixed length, in place: never a moment without a whole head. */
        if (pwrite(au.head_fd, text, sizeof(text), 0) != (ssize_t)sizeof(text))
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
        uint64_t seq = begin ? 0 : au.seq + 1;
        int r, tl;

        if (blen < 2 || body[0] != '{' || body[blen - 1] != '}')
                return -EINVAL;
        if (fstat(au.fd, &st) < 0)
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
        r = cb_audit_seal(au.keys, begin ? (const unsigned char[CB_AUDIT_MAC_LEN]){ 0 } : au.mac, canon, len, mac,
                          &line, &len);
        if (r < 0)
                goto out;
        /* One write(2) per record on an O_APPEND fd, by one thread. */
        errno = 0;
        ssize_t k = write(au.fd, line, len);
        if (k != (ssize_t)len) {
                r = k < 0 ? -errno : -ENOSPC; /* a short write on a regular file: the disk is full */
                if (k > 0 && ftruncate(au.fd, st.st_size) < 0)
                        cb_log(CB_LOG_ERR, "audit log %s: cannot cut a partial record: %s", au.path,
                               strerror(errno));
                goto out;
        }
        au.seq = seq;
        memcpy(au.mac, mac, sizeof(mac));
        au.need_begin = false;
        r = checkpoint();
        audit_sync_note_written();
        publish_head();
        if (r == 0 && !au.resuming)
                au.tentative = false; /* a record followed the resume: it stands */
out:
        free(canon);
        free(line);
        if (r < 0 && au.tentative)
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

        au.undo.size = fstat(au.fd, &st) == 0 ? st.st_size : -1;
        au.undo.seq = au.seq;
        memcpy(au.undo.mac, au.mac, sizeof(au.mac));
        au.undo.need_begin = au.need_begin;
        pthread_mutex_lock(&fail.lock);
        au.undo.failed = fail.failed;
        au.undo.failed_since = fail.failed_since;
        au.undo.refused_base = fail.refused_base;
        memcpy(au.undo.error, fail.error, sizeof(fail.error));
        pthread_mutex_unlock(&fail.lock);
        au.undo.head_len = pread(au.head_fd, au.undo.head, sizeof(au.undo.head), 0);
        au.tentative = au.undo.size >= 0 && au.undo.head_len >= 0;
}

/* The record after a resume could not be written: the log is still full.
 * A resume that announces a recovery which did not happen, and resets the
 * refusal count, would be a lie in the log: cut the file back to before
 * it, restore the head checkpoint and stay failed, still counting. */
static void untentative(void) {
        au.tentative = false;
        if (ftruncate(au.fd, au.undo.size) < 0) {
                cb_log(CB_LOG_ERR, "audit log %s: cannot take back a resume record: %s", au.path,
                       strerror(errno));
                return; /* the resume stays, and is true to the chain: the new failure is a new period */
        }
        if (au.undo.head_len == 0 ? ftruncate(au.head_fd, 0) < 0
                                  : pwrite(au.head_fd, au.undo.head, (size_t)au.undo.head_len, 0) != au.undo.head_len)
                cb_log(CB_LOG_ERR, "audit head checkpoint: cannot restore it: %s", strerror(errno));
        au.seq = au.undo.seq;
        memcpy(au.mac, au.undo.mac, sizeof(au.mac));
        au.need_begin = au.undo.need_begin;
        pthread_mutex_lock(&fail.lock);
        fail.failed = au.undo.failed;
        fail.failed_since = au.undo.failed_since;
        fail.refused_base = au.undo.refused_base;
        memcpy(fail.error, au.undo.error, sizeof(fail.error));
        pthread_mutex_unlock(&fail.lock);
        audit_sync_note_written();
        publish_head();
}

static int write_begin(void) {
        char log[2 * CB_AUDIT_LOG_ID_LEN + 1], prev_log[2 * CB_AUDIT_LOG_ID_LEN + 1], prev_mac[2 * CB_AUDIT_MAC_LEN + 1];
        json_t *o;
        int r;

        sodium_bin2hex(log, sizeof(log), au.log_id, sizeof(au.log_id));
        o = json_pack("{s:s, s:I, s:s, s:s}", "type", "audit.begin", "time", (json_int_t)time(NULL), "log", log,
                      "reason", au.reason);
        if (!o)
                return -ENOMEM;
        if (au.prev.set) {
                sodium_bin2hex(prev_log, sizeof(prev_log), au.prev.log_id, sizeof(au.prev.log_id));
                sodium_bin2hex(prev_mac, sizeof(prev_mac), au.prev.mac, sizeof(au.prev.mac));
                json_object_set_new(o, "prev_log", json_string(prev_log));
                json_object_set_new(o, "prev_seq", json_integer((json_int_t)au.prev.seq));
                json_object_set_new(o, "prev_mac", json_string(prev_mac));
        }
        r = append(o, true);
        json_decref(o);
        return r;
}

/* A new segment (log_id chosen by the caller): its keys; the header is
 * written with the next record (or at once by the caller). */
static void new_segment(const unsigned char log_id[CB_AUDIT_LOG_ID_LEN], const char *reason) {
        au.tentative = false; /* a resume in the file being left stands */
        if (au.seq || !au.need_begin) {
                /* The segment being left ends here. */
                au.prev.set = true;
                memcpy(au.prev.log_id, au.log_id, sizeof(au.log_id));
                au.prev.seq = au.seq;
                memcpy(au.prev.mac, au.mac, sizeof(au.mac));
        }
        memcpy(au.log_id, log_id, sizeof(au.log_id));
        cb_audit_segment_keys(au.master, au.log_id, au.keys);
        au.seq = 0;
        memset(au.mac, 0, sizeof(au.mac));
        au.need_begin = true;
        au.reason = reason;
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
        au.resuming = true;
        r = resume_write();
        au.resuming = false;
        return r;
}

static int resume_write(void) {
        uint64_t since, refused;
        char err[128];
        int r;

        if (au.need_begin && (r = write_begin()) < 0)
                return r;
        pthread_mutex_lock(&fail.lock);
        bool failed = fail.failed;
        since = fail.failed_since;
        refused = fail.refused_total - fail.refused_base;
        memcpy(err, fail.error, sizeof(err));
        pthread_mutex_unlock(&fail.lock);
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
        cb_log(CB_LOG_NOTICE, "audit log %s writable again after %" PRIu64 " refused request(s): serving", au.path,
               refused);
        pthread_mutex_lock(&fail.lock);
        fail.failed = false;
        fail.refused_base += refused; /* those are said; any counted since go into the next period */
        pthread_mutex_unlock(&fail.lock);
        return 0;
}

static void set_file_identity(void) {
        struct stat st;

        if (fstat(au.fd, &st) == 0) {
                pthread_mutex_lock(&fail.lock);
                fail.dev = st.st_dev;
                fail.ino = st.st_ino;
                pthread_mutex_unlock(&fail.lock);
        }
}

int audit_writer_do(audit_rec *e) {
        int r;

        switch (e->kind) {
        case AUDIT_REC_BEGIN:
                if ((r = write_begin()) < 0)
                        enter_failed(r, "writing the segment header");
                return r;
        case AUDIT_REC_REOPEN:
                audit_sync_set_fds(e->fd, au.head_fd);
                close(au.fd);
                au.fd = e->fd;
                set_file_identity();
                new_segment(e->log_id, "reopen");
                publish_head();
                if ((r = write_begin()) < 0)
                        enter_failed(r, "writing the segment header");
                return r;
        case AUDIT_REC_STOP:
                if (!is_failed() && !au.need_begin) {
                        json_t *o = json_pack("{s:s, s:I}", "type", "audit.stop", "time", (json_int_t)time(NULL));
                        if (o)
                                (void)append(o, false);
                        json_decref(o);
                }
                return 0;
        default:
                break;
        }
        if ((is_failed() || au.need_begin) && (r = resume()) < 0) {
                enter_failed(r, "writing a record");
        } else if ((r = append_text(e->canon, e->len, false)) < 0) {
                enter_failed(r, "writing a record");
        } else if (e->sync && fdatasync(au.fd) < 0) {
                /* Durable before the write it announces (the durability
                 * rule in docs/hardening-state.md). */
                r = -errno;
                enter_failed(r, "syncing a record");
        }
        if (r < 0 && e->counted)
                count_refused(); /* its request is refused (503): said in audit.resume */
        return r;
}

/* ---- making records (any thread: rec_lock) ---- */

/* Queue o (identifiers hashed, time_ms added; o is changed, not taken).
 * ret: NULL, or the entry to wait for (the caller's reference). */
static int enqueue(json_t *o, bool sync, bool counted, audit_rec **ret) {
        audit_rec *e;
        int r;

        if (ret)
                *ret = NULL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->kind = AUDIT_REC_RECORD;
        e->fd = -1;
        e->sync = sync;
        e->counted = counted;
        /* Hashed under the keys of the segment it is queued for: the two
         * together under rec_lock (a reopen switches keys and segment
         * under it too). */
        pthread_mutex_lock(&rec_lock);
        cb_audit_hide_ids(id_keys, o);
        json_object_del(o, "mac");
        json_object_del(o, "seq");
        if (!json_object_get(o, "time_ms")) { /* sub-second order of records; "time" stays whole seconds */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                json_object_set_new(o, "time_ms", json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
        }
        e->canon = json_dumps(o, JSON_COMPACT);
        if (e->canon)
                e->len = strlen(e->canon);
        r = e->canon ? audit_queue_push(e, ret != NULL) : -ENOMEM;
        pthread_mutex_unlock(&rec_lock);
        if (r < 0) {
                free(e->canon);
                free(e);
                return r;
        }
        if (ret)
                *ret = e;
        return 0;
}

static int enqueue_failed(int r) {
        enter_failed(r, r == -EAGAIN ? "the queue of records waiting to be written is full" : "queueing a record");
        return r;
}

int audit_emit(json_t *o) {
        int r;

        if (!audit_enabled())
                return 0;
        r = enqueue(o, false, false, NULL);
        return r < 0 ? enqueue_failed(r) : 0;
}

int audit_emit_wait(json_t *o) {
        audit_rec *e = NULL;
        int r;

        if (!audit_enabled())
                return 0;
        r = enqueue(o, true, true, &e);
        if (r < 0)
                return enqueue_failed(r);
        return audit_rec_wait(e, audit_deadline_ms());
}

/* The request waits for e before its answer goes out (server.c). */
static void attach(request *rq, audit_rec *e) {
        if (rq->n_audit_recs < sizeof(rq->audit_recs) / sizeof(rq->audit_recs[0]))
                rq->audit_recs[rq->n_audit_recs++] = e;
        else
                audit_rec_put(e); /* never: at most an intent, a hold and a reply */
}

int audit_write(request *rq, unsigned status, const char *decision, const char *reason) {
        audit_rec *e;
        json_t *o;
        int r;

        if (status >= 400 && status < 500 && rq->have_peer && !rq->admin_socket)
                alert_note_denial(rq->peer.uid, rq->tcp ? NULL : rq->peer.exe_sha256_hex,
                                  rq->tcp ? NULL : rq->peer.exe_path, rq->route ? rq->route : "?", status);
        if (!audit_enabled() || rq->no_audit)
                return 0;
        /* Method, URL, reason and exe come from the peer and need not be
         * UTF-8: written lossily (\xNN), never dropped. */
        o = json_pack("{s:I, s:s, s:o*, s:o*, s:i, s:s, s:o*}", "time", (json_int_t)time(NULL), "socket",
                      rq->admin_socket ? "admin" : rq->sandbox ? "sandbox" : rq->tcp ? "tcp" : "tools", "method",
                      cb_json_string_lossy(rq->method), "route", cb_json_string_lossy(rq->route ? rq->route : rq->url),
                      "status", (int)status, "decision", decision, "reason", cb_json_string_lossy(reason));
        if (o && rq->sandbox)
                json_object_set_new(o, "sandbox", json_string(rq->sandbox));
        if (o && rq->have_peer) {
                json_object_set_new(o, "uid", json_integer(rq->peer.uid));
                json_object_set_new(o, "pid", json_integer(rq->peer.pid));
                json_object_set_new(o, "exe", cb_json_string_lossy(rq->peer.exe_path));
                json_object_set_new(o, "exe_sha256", json_string(rq->peer.exe_sha256_hex));
        }
        if (o && rq->secret[0])
                json_object_set_new(o, "secret", cb_json_string_lossy(rq->secret));
        if (o && rq->client[0])
                json_object_set_new(o, "client", cb_json_string_lossy(rq->client));
        if (o && rq->accessor[0])
                json_object_set_new(o, "accessor", cb_json_string_lossy(rq->accessor));
        if (o && rq->audit_extra)
                json_object_update(o, rq->audit_extra);
        if (!o) /* out of memory: a minimal record rather than none */
                o = json_pack("{s:I, s:i, s:s, s:s}", "time", (json_int_t)time(NULL), "status", (int)status,
                              "decision", decision, "note", "record incomplete: out of memory");
        if (!o)
                r = -ENOMEM;
        else
                r = enqueue(o, false, !rq->audit_optional, rq->audit_optional ? NULL : &e);
        json_decref(o);
        if (r < 0) {
                if (!rq->audit_optional) {
                        (void)enqueue_failed(r);
                        count_refused(); /* the caller refuses (503): counted in audit.resume */
                }
                return r;
        }
        if (!rq->audit_optional)
                attach(rq, e);
        return 0;
}

int audit_intent(request *rq, pthread_mutex_t *held) {
        audit_rec *e;
        json_t *o;
        int r;

        if (!audit_enabled())
                return 0;
        o = json_pack("{s:s, s:I, s:s, s:o*, s:o*}", "type", "intent", "time", (json_int_t)time(NULL), "socket",
                      rq->admin_socket ? "admin" : "tools", "method", cb_json_string_lossy(rq->method), "url",
                      cb_json_string_lossy(rq->url));
        if (o && rq->have_peer) {
                json_object_set_new(o, "uid", json_integer(rq->peer.uid));
                json_object_set_new(o, "pid", json_integer(rq->peer.pid));
        }
        r = o ? enqueue(o, true, true, &e) : -ENOMEM;
        json_decref(o);
        if (r < 0) {
                (void)enqueue_failed(r);
                count_refused();
                return r;
        }
        /* Written and synced by the writer; waited for holding no lock
         * other requests need (admin writes are rare; tool requests never
         * wait for a sync).  The route decides everything after this. */
        if (held)
                pthread_mutex_unlock(held);
        r = audit_rec_wait(e, audit_deadline_ms());
        if (held)
                pthread_mutex_lock(held);
        if (r < 0)
                return r; /* counted (by the writer, or as a timeout) */
        rq->intent_recorded = true;
        return 0;
}

bool audit_enabled(void) {
        return atomic_load_explicit(&au_on, memory_order_acquire);
}

bool audit_available(void) {
        if (!audit_enabled())
                return true;
        /* A failed log (disk full) is tried again by the next record, with
         * a resume before it: the request goes on and waits for its record
         * (answered 503 if that fails too).  A writer stuck in one write is
         * not: new requests are refused at once instead of queueing. */
        if (!audit_queue_stalled(CB_AUDIT_STALL_MS, NULL))
                return true;
        enter_failed(-ETIMEDOUT, "a write or sync of the log stalled");
        count_refused();
        return false;
}

bool audit_failed(char *err, size_t n) {
        if (!audit_enabled())
                return false;
        pthread_mutex_lock(&fail.lock);
        bool f = fail.failed;
        if (n)
                snprintf(err, n, "%s", fail.error);
        pthread_mutex_unlock(&fail.lock);
        if (!f && audit_queue_stalled(CB_AUDIT_STALL_MS, NULL)) {
                f = true;
                if (n)
                        snprintf(err, n, "a write or sync of the log stalled");
        }
        return f;
}

/* ---- open, reopen, close ---- */

/* Open path for appending without ever blocking: O_NONBLOCK (a FIFO with
 * no reader fails at once with ENXIO instead of waiting for one, and one
 * with a reader is refused below), O_NOFOLLOW (a symlink is refused), and
 * only a regular file is kept.  Called at start and on SIGHUP, with the
 * daemon's request lock held: it must never wait on anything another
 * process controls. */
static int open_log(const char *path) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        struct stat st;

        if (fd < 0 && errno == ELOOP)
                return cb_error_set(-ELOOP, "audit log %s is a symbolic link: refusing it (give the real path)", path);
        if (fd < 0 && errno == ENXIO)
                return cb_error_set(-EINVAL, "audit log %s is a FIFO or device, not a regular file: refusing it", path);
        if (fd < 0)
                return cb_error_set(-errno, "cannot open audit log %s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return cb_error_set(-EINVAL, "audit log %s is not a regular file (a FIFO, socket or device?): "
                                    "refusing it", path);
        }
        return fd;
}

static int read_head(int fd, cb_audit_head *ret) {
        char text[CB_AUDIT_HEAD_TEXT_LEN + 1];
        ssize_t n = pread(fd, text, sizeof(text), 0);

        memset(ret, 0, sizeof(*ret));
        if (n == 0)
                return 0; /* a new checkpoint: no previous segment */
        if (n < 0)
                return cb_error_set(-errno, "audit head checkpoint: %s", strerror(errno));
        if (cb_audit_head_decode(au.master, text, (size_t)n, ret) < 0)
                return cb_error_set(-EBADMSG, "audit head checkpoint is malformed or forged");
        return 0;
}

/* The master key, and the checkpoint opened for writing (the daemon) or
 * reading only (offline verify: a missing checkpoint is -ENOENT). */
static int load_keys(const char *state_dir, cb_store *store, bool writer, int *ret_head_fd) {
        char p[PATH_MAX];
        int fd;

        au.master = sodium_malloc(CB_AUDIT_KEY_LEN);
        au.keys = sodium_malloc(sizeof(*au.keys));
        if (!au.master || !au.keys)
                return cb_error_set(-ENOMEM, "out of memory");
        if (cb_store_derive_key(store, CB_AUDIT_KDF_CONTEXT, 1, au.master) < 0)
                return -EINVAL;
        if ((size_t)snprintf(p, sizeof(p), "%s/%s", state_dir, HEAD_FILE) >= sizeof(p))
                return cb_error_set(-ENAMETOOLONG, "state dir path too long");
        fd = writer ? open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600)
                    : open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0 && !writer && errno == ENOENT)
                return -ENOENT;
        if (fd < 0)
                return cb_error_set(-errno, "cannot open the audit head checkpoint %s: %s", p, strerror(errno));
        {
                struct stat st;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
                        close(fd);
                        return cb_error_set(-EPERM, "the audit head checkpoint %s is not a regular file of uid %u "
                                            "with mode 0600: refusing it", p, (unsigned)geteuid());
                }
        }
        *ret_head_fd = fd;
        return 0;
}

/* The checkpoint lags the file by one record if the daemon died between
 * the two writes: catch up from the file's last line (read from the end,
 * at most one line's cap). */
static void catch_up(const char *path) {
        char *buf = NULL;
        struct stat st;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the start */

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 2)
                goto out;
        size_t want = (size_t)st.st_size < CB_AUDIT_LINE_MAX + 1 ? (size_t)st.st_size : CB_AUDIT_LINE_MAX + 1;
        buf = malloc(want);
        if (!buf || pread(fd, buf, want, st.st_size - (off_t)want) != (ssize_t)want || buf[want - 1] != '\n')
                goto out;
        size_t end = want - 1, start = end;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        if (start == 0 && want == CB_AUDIT_LINE_MAX + 1)
                goto out; /* no line start within the cap: not a record */
        if (cb_audit_head_catch_up(au.master, &au.prev, buf + start, end - start))
                cb_log(CB_LOG_WARNING, "audit log %s: its last record was written but not checkpointed "
                                       "(the daemon stopped in between): linking to it", path);
out:
        free(buf);
        if (fd >= 0)
                close(fd);
}

int audit_open(const char *path, const char *state_dir, cb_store *store) {
        int r;

        r = load_keys(state_dir, store, true, &au.head_fd);
        if (r < 0)
                return r;
        id_keys = sodium_malloc(sizeof(*id_keys));
        if (!id_keys)
                return cb_error_set(-ENOMEM, "out of memory");
        r = read_head(au.head_fd, &au.prev);
        if (r < 0)
                return cb_error_set(r, "%s (in %s): refusing to start a new audit segment that cannot link to the "
                                       "old one; move the file away to start afresh",
                                    cb_error_last(), state_dir);
        au.path = strdup(path);
        if (!au.path)
                return cb_error_set(-ENOMEM, "out of memory");
        catch_up(path);
        r = open_log(path);
        if (r < 0)
                return r;
        au.fd = r;
        audit_sync_set_fds(au.fd, au.head_fd);
        set_file_identity();
        au.need_begin = true;
        randombytes_buf(au.log_id, sizeof(au.log_id));
        cb_audit_segment_keys(au.master, au.log_id, au.keys);
        memcpy(id_keys, au.keys, sizeof(*id_keys));
        alert_set_id_keys(id_keys);
        au.reason = "start";
        publish_head();
        /* From here on the file is the writer thread's. */
        r = audit_queue_start();
        if (r < 0)
                return cb_error_set(r, "cannot start the audit writer thread: %s", strerror(-r));
        audit_rec *e = calloc(1, sizeof(*e));
        if (!e)
                return cb_error_set(-ENOMEM, "out of memory");
        e->kind = AUDIT_REC_BEGIN;
        e->fd = -1;
        (void)audit_queue_push(e, false);
        atomic_store_explicit(&au_on, true, memory_order_release);
        return 0;
}

int audit_reopen(void) {
        audit_rec *e;
        int fd;

        if (!audit_enabled())
                return 0;
        fd = open_log(au.path); /* never blocks (open_log) */
        if (fd < 0)
                return fd;
        e = calloc(1, sizeof(*e));
        if (!e) {
                close(fd);
                return cb_error_set(-ENOMEM, "out of memory");
        }
        e->kind = AUDIT_REC_REOPEN;
        e->fd = fd;
        randombytes_buf(e->log_id, sizeof(e->log_id));
        /* Records queued from now on (after this, under rec_lock) go to
         * the new segment: their identifiers are hashed under its keys. */
        pthread_mutex_lock(&rec_lock);
        cb_audit_segment_keys(au.master, e->log_id, id_keys);
        alert_set_id_keys(id_keys);
        (void)audit_queue_push(e, false);
        pthread_mutex_unlock(&rec_lock);
        return 0;
}

void audit_close(void) {
        if (!audit_enabled())
                return;
        atomic_store_explicit(&au_on, false, memory_order_release);
        /* The writer writes what is queued, then audit.stop.  Stalled in a
         * write (a frozen file system), it is left behind: the process is
         * exiting, and nothing it uses is freed. */
        if (!audit_queue_stop(5000)) {
                cb_log(CB_LOG_ERR, "audit log %s: the writer is stalled in a write; exiting without waiting for it",
                       au.path);
                return;
        }
        audit_sync_shutdown();
        if (au.fd >= 0)
                close(au.fd);
        if (au.head_fd >= 0)
                close(au.head_fd);
        au.fd = au.head_fd = -1;
        sodium_free(au.master);
        sodium_free(au.keys);
        sodium_free(id_keys);
        au.master = NULL;
        au.keys = NULL;
        id_keys = NULL;
        free(au.path);
        au.path = NULL;
}

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

        if (!audit_enabled() || !au.master)
                return cb_error_set(-ENOENT, "this broker runs without --audit-log");
        if (n < 1 || n > CB_AUDIT_VERIFY_FILES_MAX)
                return cb_error_set(-EINVAL, "1 to %d files", CB_AUDIT_VERIFY_FILES_MAX);
        /* The head, and whether the last file is the log being written
         * (then it must end with the head's segment).  The master key is
         * fixed for the daemon's life. */
        pthread_mutex_lock(&fail.lock);
        head = fail.head; /* as written by now (records still queued are not in the file yet) */
        cur.st_dev = fail.dev;
        cur.st_ino = fail.ino;
        pthread_mutex_unlock(&fail.lock);
        bool required = stat(files[n - 1], &last) == 0 && cur.st_dev == last.st_dev && cur.st_ino == last.st_ino;
        cb_audit_verifier_init(&v, au.master);
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

        r = load_keys(state_dir, store, false, &au.head_fd);
        if ((r < 0 && r != -ENOENT) || (r == 0 && read_head(au.head_fd, &head) < 0)) {
                cb_log(CB_LOG_ERR, "audit verify: %s", cb_error_last());
                goto out;
        }
        cb_audit_verifier_init(&v, au.master);
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
        if (au.head_fd >= 0)
                close(au.head_fd);
        au.head_fd = -1;
        sodium_free(au.master);
        sodium_free(au.keys);
        au.master = NULL;
        au.keys = NULL;
        return status;
}

int audit_id_hash(const char *log_hex, const char *id, char out[CB_AUDIT_ID_HASH_LEN + 1]) {
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        cb_audit_keys k;
        size_t got = 0;

        if (!au.master)
                return -ENOENT;
        if (strlen(log_hex) != 2 * CB_AUDIT_LOG_ID_LEN ||
            sodium_hex2bin(log_id, sizeof(log_id), log_hex, strlen(log_hex), NULL, &got, NULL) != 0 ||
            got != sizeof(log_id))
                return -EINVAL;
        cb_audit_segment_keys(au.master, log_id, &k);
        cb_audit_id_hash(&k, id, out);
        sodium_memzero(&k, sizeof(k));
        return 0;
}
