/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log (see audit.h; the format is audit_format.h): its file and
 * head checkpoint opened, reopened and closed, the fail-closed state, and
 * the state the log's files share (audit_internal.h).  Records are made on
 * any thread under audit_rec_lock (audit_record.c) and queued; the writer
 * thread (audit_queue.c) writes them: the chain (seq, MAC, segments), the
 * tentative resume and the file belong to that thread alone
 * (audit_writer.c).  Verification: audit_verify.c.
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

#include <sodium.h>

#include "alert.h"
#include "audit.h"
#include "audit_format.h"
#include "audit_internal.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "store_derive.h"

#define HEAD_FILE "audit-head"
/* A writer inside one write or sync for longer than this is stalled: new
 * requests are refused at once (503) rather than queued to wait. */
#define CB_AUDIT_STALL_MS 500

struct audit_writer_state audit_wr = { .fd = -1, .head_fd = -1 };
pthread_mutex_t audit_rec_lock = PTHREAD_MUTEX_INITIALIZER;
cb_audit_keys *audit_id_keys;
struct audit_fail_state audit_fail = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Set once the log is open, cleared at close: read without a lock. */
static atomic_bool au_on;

/* ---- the failed state ---- */

void audit_enter_failed(int r, const char *what) {
        char err[128];

        metrics_audit_write_failed(); /* every failed record, not only the first of a period */
        pthread_mutex_lock(&audit_fail.lock);
        if (audit_fail.failed) {
                pthread_mutex_unlock(&audit_fail.lock);
                return;
        }
        audit_fail.failed = true;
        audit_fail.failed_since = (uint64_t)time(NULL);
        audit_fail.refused_base = audit_fail.refused_total;
        snprintf(audit_fail.error, sizeof(audit_fail.error), "%s: %s", what, strerror(-r));
        memcpy(err, audit_fail.error, sizeof(err));
        pthread_mutex_unlock(&audit_fail.lock);
        json_t *ev = json_pack("{s:o*, s:s}", "path", cb_json_string_lossy(audit_wr.path), "error", err);
        alert_raise("audit_write_failed", ev);
        json_decref(ev);
        cb_log(CB_LOG_ERR, "audit log %s cannot be written (%s): refusing requests until it can", audit_wr.path, err);
}

void audit_count_refused(void) {
        pthread_mutex_lock(&audit_fail.lock);
        audit_fail.refused_total++;
        pthread_mutex_unlock(&audit_fail.lock);
}

bool audit_is_failed(void) {
        pthread_mutex_lock(&audit_fail.lock);
        bool f = audit_fail.failed;
        pthread_mutex_unlock(&audit_fail.lock);
        return f;
}

void audit_note_timeout(void) {
        uint64_t ms = 0;

        (void)audit_queue_stalled(0, &ms);
        char what[96];
        snprintf(what, sizeof(what), "a record not written within %u ms (a write stalled for %" PRIu64 " ms)",
                 (unsigned)CB_AUDIT_WAIT_MS, ms);
        audit_enter_failed(-ETIMEDOUT, what);
        audit_count_refused();
}

/* The head for readers other than the writer (under audit_fail.lock). */
void audit_publish_head(void) {
        pthread_mutex_lock(&audit_fail.lock);
        if (audit_wr.need_begin) {
                audit_fail.head = audit_wr.prev;
        } else {
                audit_fail.head.set = true;
                memcpy(audit_fail.head.log_id, audit_wr.log_id, sizeof(audit_wr.log_id));
                audit_fail.head.seq = audit_wr.seq;
                memcpy(audit_fail.head.mac, audit_wr.mac, sizeof(audit_wr.mac));
        }
        pthread_mutex_unlock(&audit_fail.lock);
}

void audit_set_file_identity(void) {
        struct stat st;

        if (fstat(audit_wr.fd, &st) == 0) {
                pthread_mutex_lock(&audit_fail.lock);
                audit_fail.dev = st.st_dev;
                audit_fail.ino = st.st_ino;
                pthread_mutex_unlock(&audit_fail.lock);
        }
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
        audit_enter_failed(-ETIMEDOUT, "a write or sync of the log stalled");
        audit_count_refused();
        return false;
}

bool audit_failed(char *err, size_t n) {
        if (!audit_enabled())
                return false;
        pthread_mutex_lock(&audit_fail.lock);
        bool f = audit_fail.failed;
        if (n)
                snprintf(err, n, "%s", audit_fail.error);
        pthread_mutex_unlock(&audit_fail.lock);
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
 * daemon's admin lock held: it must never wait on anything another
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

int audit_read_head(int fd, cb_audit_head *ret) {
        char text[CB_AUDIT_HEAD_TEXT_LEN + 1];
        ssize_t n = pread(fd, text, sizeof(text), 0);

        memset(ret, 0, sizeof(*ret));
        if (n == 0)
                return 0; /* a new checkpoint: no previous segment */
        if (n < 0)
                return cb_error_set(-errno, "audit head checkpoint: %s", strerror(errno));
        if (cb_audit_head_decode(audit_wr.master, text, (size_t)n, ret) < 0)
                return cb_error_set(-EBADMSG, "audit head checkpoint is malformed or forged");
        return 0;
}

/* The master key, and the checkpoint opened for writing (the daemon) or
 * reading only (offline verify: a missing checkpoint is -ENOENT). */
int audit_load_keys(const char *state_dir, cb_store *store, bool writer, int *ret_head_fd) {
        char p[PATH_MAX];
        int fd;

        audit_wr.master = sodium_malloc(CB_AUDIT_KEY_LEN);
        audit_wr.keys = sodium_malloc(sizeof(*audit_wr.keys));
        if (!audit_wr.master || !audit_wr.keys)
                return cb_error_set(-ENOMEM, "out of memory");
        if (cb_store_derive_key(store, CB_AUDIT_KDF_CONTEXT, 1, audit_wr.master) < 0)
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
        if (cb_audit_head_catch_up(audit_wr.master, &audit_wr.prev, buf + start, end - start))
                cb_log(CB_LOG_WARNING, "audit log %s: its last record was written but not checkpointed "
                                       "(the daemon stopped in between): linking to it", path);
out:
        free(buf);
        if (fd >= 0)
                close(fd);
}

int audit_open(const char *path, const char *state_dir, cb_store *store) {
        int r;

        r = audit_load_keys(state_dir, store, true, &audit_wr.head_fd);
        if (r < 0)
                return r;
        audit_id_keys = sodium_malloc(sizeof(*audit_id_keys));
        if (!audit_id_keys)
                return cb_error_set(-ENOMEM, "out of memory");
        r = audit_read_head(audit_wr.head_fd, &audit_wr.prev);
        if (r < 0)
                return cb_error_set(r, "%s (in %s): refusing to start a new audit segment that cannot link to the "
                                       "old one; move the file away to start afresh",
                                    cb_error_last(), state_dir);
        audit_wr.path = strdup(path);
        if (!audit_wr.path)
                return cb_error_set(-ENOMEM, "out of memory");
        catch_up(path);
        r = open_log(path);
        if (r < 0)
                return r;
        audit_wr.fd = r;
        audit_sync_set_fds(audit_wr.fd, audit_wr.head_fd);
        audit_set_file_identity();
        audit_wr.need_begin = true;
        randombytes_buf(audit_wr.log_id, sizeof(audit_wr.log_id));
        cb_audit_segment_keys(audit_wr.master, audit_wr.log_id, audit_wr.keys);
        memcpy(audit_id_keys, audit_wr.keys, sizeof(*audit_id_keys));
        alert_set_id_keys(audit_id_keys);
        audit_wr.reason = "start";
        audit_publish_head();
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
        fd = open_log(audit_wr.path); /* never blocks (open_log) */
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
        /* Records queued from now on (after this, under audit_rec_lock) go to
         * the new segment: their identifiers are hashed under its keys. */
        pthread_mutex_lock(&audit_rec_lock);
        cb_audit_segment_keys(audit_wr.master, e->log_id, audit_id_keys);
        alert_set_id_keys(audit_id_keys);
        (void)audit_queue_push(e, false);
        pthread_mutex_unlock(&audit_rec_lock);
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
                       audit_wr.path);
                return;
        }
        audit_sync_shutdown();
        if (audit_wr.fd >= 0)
                close(audit_wr.fd);
        if (audit_wr.head_fd >= 0)
                close(audit_wr.head_fd);
        audit_wr.fd = audit_wr.head_fd = -1;
        sodium_free(audit_wr.master);
        sodium_free(audit_wr.keys);
        sodium_free(audit_id_keys);
        audit_wr.master = NULL;
        audit_wr.keys = NULL;
        audit_id_keys = NULL;
        free(audit_wr.path);
        audit_wr.path = NULL;
}
