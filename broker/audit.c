/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log writer, its fail-closed state and the verify route (see
 * audit.h; the format is audit_format.h).
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
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "store_derive.h"

#define HEAD_FILE "audit-head"
#define VERIFY_FILES_MAX 64

static struct {
        int fd, head_fd;
        char *path;
        unsigned char *master; /* sodium_malloc: CB_AUDIT_KEY_LEN */
        cb_audit_keys *keys;   /* sodium_malloc: the current segment's */
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t seq;          /* of the last record written in this segment */
        unsigned char mac[CB_AUDIT_MAC_LEN];
        bool need_begin;       /* the segment header is not written yet */
        const char *reason;    /* why the segment starts: "start", "reopen" */
        cb_audit_head prev;    /* where the previous segment ended */
        bool failed;
        uint64_t failed_since, refused;
        char error[128];
        /* A resume (and header) written but not yet followed by a record:
         * if that record cannot be written either, the disk is still full
         * and the resume is taken back (see resume()). */
        bool tentative, resuming;
        struct {
                off_t size; /* the log's size before the resume */
                uint64_t seq, failed_since, refused;
                unsigned char mac[CB_AUDIT_MAC_LEN];
                bool need_begin, failed;
                char error[128];
                char head[CB_AUDIT_HEAD_TEXT_LEN];
                ssize_t head_len;
        } undo;
} au = { .fd = -1, .head_fd = -1 };

/* ---- writing ---- */

static void sync_note_written(void);

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

static void enter_failed(int r, const char *what) {
        metrics_audit_write_failed(); /* every failed record, not only the first of a period */
        if (au.failed)
                return;
        au.failed = true;
        au.failed_since = (uint64_t)time(NULL);
        au.refused = 0;
        snprintf(au.error, sizeof(au.error), "%s: %s", what, strerror(-r));
        json_t *ev = json_pack("{s:o*, s:s}", "path", cb_json_string_lossy(au.path), "error", au.error);
        alert_raise("audit_write_failed", ev);
        json_decref(ev);
        cb_log(CB_LOG_ERR, "audit log %s cannot be written (%s): refusing requests until it can", au.path,
                au.error);
}

/* Identifiers of tokens are written only as keyed hashes, also inside
 * free text (a refusal's reason). */
static void hash_identifiers(json_t *o) {
        cb_audit_hide_ids(au.keys, o);
}

static void untentative(void);

/* Seal o as the segment's next record and append it; on any failure the
 * file is cut back to where it was and the head does not move (and a
 * tentative resume before it is taken back). */
static int append(json_t *o, bool begin) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        char *canon = NULL, *line = NULL;
        size_t len;
        struct stat st;
        uint64_t seq = begin ? 0 : au.seq + 1;
        int r;

        if (fstat(au.fd, &st) < 0)
                return -errno;
        json_object_del(o, "mac");
        if (!json_object_get(o, "time_ms")) { /* sub-second order of records; "time" stays whole seconds */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                json_object_set_new(o, "time_ms", json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
        }
        json_object_set_new(o, "seq", json_integer((json_int_t)seq));
        /* A header records where in its file it starts (the MAC covers
         * it): removing whole segments before it is then visible. */
        if (begin)
                json_object_set_new(o, "offset", json_integer((json_int_t)st.st_size));
        canon = json_dumps(o, JSON_COMPACT);
        if (!canon)
                return -ENOMEM;
        r = cb_audit_seal(au.keys, begin ? (const unsigned char[CB_AUDIT_MAC_LEN]){ 0 } : au.mac, canon,
                          strlen(canon), mac, &line, &len);
        if (r < 0)
                goto out;
        /* One write(2) per record on an O_APPEND fd: records never interleave. */
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
        sync_note_written();
        if (r == 0 && !au.resuming)
                au.tentative = false; /* a record followed the resume: it stands */
out:
        free(canon);
        free(line);
        if (r < 0 && au.tentative)
                untentative();
        return r;
}

/* Remember the state resume() may have to be taken back to. */
static void tentative_begin(void) {
        struct stat st;

        au.undo.size = fstat(au.fd, &st) == 0 ? st.st_size : -1;
        au.undo.seq = au.seq;
        memcpy(au.undo.mac, au.mac, sizeof(au.mac));
        au.undo.need_begin = au.need_begin;
        au.undo.failed = au.failed;
        au.undo.failed_since = au.failed_since;
        au.undo.refused = au.refused;
        memcpy(au.undo.error, au.error, sizeof(au.error));
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
        au.failed = au.undo.failed;
        au.failed_since = au.undo.failed_since;
        au.refused = au.undo.refused;
        memcpy(au.error, au.undo.error, sizeof(au.error));
        sync_note_written();
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

/* A new segment: fresh log id and keys; the header is written with the
 * next record (or at once by the caller). */
static void new_segment(const char *reason) {
        au.tentative = false; /* a resume in the file being left stands */
        if (au.seq || !au.need_begin) {
                /* The segment being left ends here. */
                au.prev.set = true;
                memcpy(au.prev.log_id, au.log_id, sizeof(au.log_id));
                au.prev.seq = au.seq;
                memcpy(au.prev.mac, au.mac, sizeof(au.mac));
        }
        randombytes_buf(au.log_id, sizeof(au.log_id));
        cb_audit_segment_keys(au.master, au.log_id, au.keys);
        alert_set_id_keys(au.keys);
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
        int r;

        if (au.need_begin && (r = write_begin()) < 0)
                return r;
        if (!au.failed)
                return 0;
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:s}", "type", "audit.resume", "time", (json_int_t)time(NULL),
                              "failed_since", (json_int_t)au.failed_since, "refused", (json_int_t)au.refused, "error",
                              au.error);
        if (!o)
                return -ENOMEM;
        r = append(o, false);
        json_decref(o);
        if (r < 0)
                return r;
        cb_log(CB_LOG_NOTICE, "audit log %s writable again after %" PRIu64 " refused request(s): serving",
                au.path, au.refused);
        au.failed = false;
        return 0;
}

int audit_emit(json_t *o) {
        int r;

        if (au.fd < 0)
                return 0;
        if ((au.failed || au.need_begin) && (r = resume()) < 0) {
                enter_failed(r, "writing a record");
                return r;
        }
        hash_identifiers(o);
        r = append(o, false);
        if (r < 0)
                enter_failed(r, "writing a record");
        return r;
}

int audit_write(const request *rq, unsigned status, const char *decision, const char *reason) {
        json_t *o;
        int r;

        if (status >= 400 && status < 500 && rq->have_peer && !rq->admin_socket)
                alert_note_denial(rq->peer.uid, rq->tcp ? NULL : rq->peer.exe_sha256_hex,
                                  rq->tcp ? NULL : rq->peer.exe_path, rq->route ? rq->route : "?", status);
        if (au.fd < 0 || rq->no_audit)
                return 0;
        /* Method, URL, reason and exe come from the peer and need not be
         * UTF-8: written lossily (\xNN), never dropped. */
        o = json_pack("{s:I, s:s, s:o*, s:o*, s:i, s:s, s:o*}", "time", (json_int_t)time(NULL), "socket",
                      rq->admin_socket ? "admin" : rq->tcp ? "tcp" : "tools", "method",
                      cb_json_string_lossy(rq->method), "route", cb_json_string_lossy(rq->route ? rq->route : rq->url),
                      "status", (int)status, "decision", decision, "reason", cb_json_string_lossy(reason));
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
        if (!o) {
                enter_failed(-ENOMEM, "building a record");
                return -ENOMEM; /* the caller fails closed (reply_json: 503) */
        }
        r = audit_emit(o);
        json_decref(o);
        if (r < 0)
                au.refused++; /* the caller refuses (503): counted in audit.resume */
        return r;
}

int audit_intent(request *rq) {
        json_t *o;
        int r;

        if (au.fd < 0)
                return 0;
        o = json_pack("{s:s, s:I, s:s, s:o*, s:o*}", "type", "intent", "time", (json_int_t)time(NULL), "socket",
                      rq->admin_socket ? "admin" : "tools", "method", cb_json_string_lossy(rq->method), "url",
                      cb_json_string_lossy(rq->url));
        if (o && rq->have_peer) {
                json_object_set_new(o, "uid", json_integer(rq->peer.uid));
                json_object_set_new(o, "pid", json_integer(rq->peer.pid));
        }
        if (!o) {
                enter_failed(-ENOMEM, "building a record");
                au.refused++;
                return -ENOMEM;
        }
        r = audit_emit(o);
        json_decref(o);
        /* Durable before the write it announces (the durability rule in
         * docs/hardening-state.md): admin writes are rare; tool requests
         * never wait for this. */
        if (r == 0 && fdatasync(au.fd) < 0) {
                r = -errno;
                enter_failed(r, "syncing a record");
        }
        if (r < 0) {
                au.refused++;
                return r;
        }
        rq->intent_recorded = true;
        return 0;
}

/* ---- group commit ---- */

/* Records are written with one write(2) each under cbd.lock; making them
 * durable is this thread's job, off every lock a request needs: at most
 * CB_AUDIT_SYNC_MS after a record is written, the log and the head
 * checkpoint are fdatasync'ed (a power loss loses at most that window;
 * admin writes do not wait for it, audit_intent syncs them). */
#define CB_AUDIT_SYNC_MS 100
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static int sync_fd = -1, sync_head_fd = -1; /* dups owned by the thread's side */
static bool sync_dirty, sync_stop, sync_started;
static pthread_t sync_thread;

static void *sync_main(void *arg) {
        (void)arg;
        pthread_mutex_lock(&sync_lock);
        while (!sync_stop) {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += CB_AUDIT_SYNC_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void)pthread_cond_timedwait(&sync_cond, &sync_lock, &ts);
                if (sync_dirty && sync_fd >= 0) {
                        sync_dirty = false;
                        (void)fdatasync(sync_fd); /* an error shows at the next write's fstat/write */
                        if (sync_head_fd >= 0)
                                (void)fdatasync(sync_head_fd);
                }
        }
        pthread_mutex_unlock(&sync_lock);
        return NULL;
}

static void sync_note_written(void) {
        if (pthread_mutex_trylock(&sync_lock) == 0) { /* never wait on a sync in progress */
                sync_dirty = true;
                pthread_mutex_unlock(&sync_lock);
        } else {
                __atomic_store_n(&sync_dirty, true, __ATOMIC_RELEASE);
        }
}

/* Point the thread at the log being written (at open and reopen). */
static void sync_set_fds(int fd, int head_fd) {
        int nfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
        int nhead = head_fd >= 0 ? fcntl(head_fd, F_DUPFD_CLOEXEC, 0) : -1;

        pthread_mutex_lock(&sync_lock);
        if (sync_fd >= 0) {
                (void)fdatasync(sync_fd); /* the old file's last records */
                close(sync_fd);
        }
        if (sync_head_fd >= 0)
                close(sync_head_fd);
        sync_fd = nfd;
        sync_head_fd = nhead;
        if (!sync_started && nfd >= 0 && pthread_create(&sync_thread, NULL, sync_main, NULL) == 0)
                sync_started = true;
        pthread_mutex_unlock(&sync_lock);
}

static void sync_shutdown(void) {
        pthread_mutex_lock(&sync_lock);
        sync_stop = true;
        pthread_cond_signal(&sync_cond);
        pthread_mutex_unlock(&sync_lock);
        if (sync_started)
                pthread_join(sync_thread, NULL);
        sync_started = false;
        if (sync_fd >= 0) {
                (void)fdatasync(sync_fd);
                close(sync_fd);
        }
        if (sync_head_fd >= 0) {
                (void)fdatasync(sync_head_fd);
                close(sync_head_fd);
        }
        sync_fd = sync_head_fd = -1;
        sync_stop = false;
}

/* Set once the log is open, cleared at close: read without cbd.lock by
 * the proxy's transfer loops (audit_enabled). */
static atomic_bool au_on;

bool audit_enabled(void) {
        return atomic_load_explicit(&au_on, memory_order_acquire);
}

bool audit_available(void) {
        int r;

        if (au.fd < 0 || (!au.failed && !au.need_begin))
                return true;
        r = resume();
        if (r == 0)
                return true;
        if (!au.failed)
                enter_failed(r, "writing the segment header");
        au.refused++;
        return false;
}

int audit_refuse(request *rq) {
        rq->no_audit = true; /* it could not be written */
        return reply_error(rq, 503, "audit_unavailable",
                           "the audit log cannot be written (%s): requests are refused until it can", au.error);
}

/* ---- open, reopen, close ---- */

/* Open path for appending without ever blocking: O_NONBLOCK (a FIFO with
 * no reader fails at once with ENXIO instead of waiting for one, and one
 * with a reader is refused below), O_NOFOLLOW (a symlink is refused), and
 * only a regular file is kept.  Called at start and on SIGHUP, under
 * cbd.lock: it must never wait on anything another process controls. */
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
        cbd.audit_fd = r;
        sync_set_fds(au.fd, au.head_fd);
        atomic_store_explicit(&au_on, true, memory_order_release);
        au.need_begin = true;
        randombytes_buf(au.log_id, sizeof(au.log_id));
        cb_audit_segment_keys(au.master, au.log_id, au.keys);
        alert_set_id_keys(au.keys);
        au.reason = "start";
        if ((r = write_begin()) < 0)
                enter_failed(r, "writing the segment header");
        return 0;
}

int audit_reopen(void) {
        int fd, r;

        if (au.fd < 0)
                return 0;
        fd = open_log(au.path);
        if (fd < 0)
                return fd;
        close(au.fd);
        au.fd = fd;
        cbd.audit_fd = fd;
        sync_set_fds(au.fd, au.head_fd);
        new_segment("reopen");
        if ((r = write_begin()) < 0)
                enter_failed(r, "writing the segment header");
        return 0;
}

void audit_close(void) {
        if (au.fd >= 0 && !au.failed && !au.need_begin) {
                json_t *o = json_pack("{s:s, s:I}", "type", "audit.stop", "time", (json_int_t)time(NULL));
                if (o)
                        (void)append(o, false);
                json_decref(o);
        }
        sync_shutdown();
        if (au.fd >= 0)
                close(au.fd);
        if (au.head_fd >= 0)
                close(au.head_fd);
        au.fd = au.head_fd = -1;
        cbd.audit_fd = -1;
        atomic_store_explicit(&au_on, false, memory_order_release);
        sodium_free(au.master);
        sodium_free(au.keys);
        au.master = NULL;
        au.keys = NULL;
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

int api_audit(request *rq) {
        static const char *const allowed[] = { "files", NULL };
        const char *files[VERIFY_FILES_MAX];
        cb_audit_verifier v;
        cb_audit_head head = { 0 };
        struct stat cur, last;
        json_t *body, *a, *e;
        size_t n, i, bad = 0;
        int r;

        rq->route = "audit.verify";
        if (strcmp(rq->url, "/v1/admin/audit/verify") != 0)
                return reply_error(rq, 404, "not_found", "no route %.64s", rq->url);
        if (strcmp(rq->method, "POST") != 0)
                return reply_error(rq, 405, "method_not_allowed", "use POST");
        if (au.fd < 0 || !au.master)
                return reply_error(rq, 409, "no_audit_log", "this broker runs without --audit-log");
        body = body_object(rq, allowed);
        if (!body)
                return MHD_YES;
        a = json_object_get(body, "files");
        n = json_array_size(a);
        if (!json_is_array(a) || n < 1 || n > VERIFY_FILES_MAX) {
                json_decref(body);
                return reply_error(rq, 400, "bad_request", "\"files\": 1 to %d absolute paths, oldest first",
                                   VERIFY_FILES_MAX);
        }
        json_array_foreach(a, i, e) {
                files[i] = json_string_value(e);
                if (!files[i] || files[i][0] != '/' || json_string_length(e) >= PATH_MAX) {
                        json_decref(body);
                        return reply_error(rq, 400, "bad_request", "\"files\"[%zu] is not an absolute path", i);
                }
        }
        /* The head, and whether the last file is the log being written
         * (then it must end with the head's segment). */
        head.set = true;
        memcpy(head.log_id, au.log_id, sizeof(head.log_id));
        head.seq = au.seq;
        memcpy(head.mac, au.mac, sizeof(head.mac));
        if (au.need_begin)
                head = au.prev;
        bool required = fstat(au.fd, &cur) == 0 && stat(files[n - 1], &last) == 0 && cur.st_dev == last.st_dev &&
                        cur.st_ino == last.st_ino;
        /* Reading a large file must not hold up every request: the master
         * key is fixed for the daemon's life, the head was copied above. */
        pthread_mutex_unlock(&cbd.lock);
        cb_audit_verifier_init(&v, au.master);
        r = cb_audit_verify_files(&v, files, n, &head, required, &bad);
        pthread_mutex_lock(&cbd.lock);
        if (r < 0) {
                cb_audit_verifier_done(&v);
                json_decref(body);
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        }
        json_t *o = verdict(&v, files, bad);
        cb_audit_verifier_done(&v);
        r = reply_json(rq, 200, o, false);
        json_decref(body);
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
