/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's write path (audit_internal.h): requests put their record
 * into a bounded in-memory queue under audit_rec_lock (memory only), one writer
 * thread writes the queue in order (write(2), and fdatasync(2) for an
 * intent), and a request waits for "my record is written" holding no lock
 * another request needs, with a deadline.  So a slow or stalled file
 * system holds up only the requests whose records are waiting, each at most
 * CB_AUDIT_WAIT_MS; everything else (refusals of a full queue, requests that
 * need no record) goes on.  The group-commit sync thread is here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "audit_internal.h"

#define QUEUE_BYTES_MAX (4u << 20) /* records waiting to be written, bytes */
#define QUEUE_ENTRIES_MAX 8192u

static struct {
        pthread_mutex_t lock;
        pthread_cond_t work; /* the writer waits for entries */
        pthread_cond_t done; /* waiters wait for theirs */
        audit_rec *head, *tail;
        size_t n, bytes;
        uint64_t busy_since_ms; /* the writer is in a write or sync since then (0: not) */
        bool started, ended;
        pthread_t thread;
        /* Requests suspended until their record is written. */
        audit_rec *watch;
        bool watch_stop, deadline_started;
        pthread_t deadline_thread;
        pthread_cond_t deadline_cond;
} q = { .deadline_cond = PTHREAD_COND_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void rec_free(audit_rec *e) {
        free(e->canon);
        free(e);
}

/* Drop one reference (under q.lock). */
static void rec_unref_locked(audit_rec *e) {
        if (--e->refs == 0)
                rec_free(e);
}

static void watch_remove_locked(audit_rec *e) {
        if (e->wprev)
                e->wprev->wnext = e->wnext;
        else
                q.watch = e->wnext;
        if (e->wnext)
                e->wnext->wprev = e->wprev;
        e->wprev = e->wnext = NULL;
        e->wake = NULL;
}

/* Take e's wake-up off the list (under q.lock); the caller calls it after
 * dropping the lock (it resumes an MHD connection, which takes MHD's own
 * locks), then drops the reference the watch held. */
static void (*watch_take_locked(audit_rec *e, void **ret_ud))(void *) {
        void (*w)(void *) = e->wake;

        if (!w)
                return NULL;
        *ret_ud = e->wake_ud;
        watch_remove_locked(e);
        return w;
}

/* Wakes the requests whose deadline passed while the writer is stuck. */
static void *deadline_main(void *arg) {
        (void)arg;
        pthread_mutex_lock(&q.lock);
        while (!q.watch_stop || q.watch) {
                struct timespec ts;
                uint64_t now = now_ms();
                audit_rec *e, *due = NULL;

                for (e = q.watch; e;) {
                        audit_rec *next = e->wnext;
                        if (q.watch_stop || e->wake_deadline_ms <= now) {
                                void *ud = NULL;
                                void (*w)(void *) = watch_take_locked(e, &ud);
                                due = e;
                                pthread_mutex_unlock(&q.lock);
                                w(ud);
                                pthread_mutex_lock(&q.lock);
                                rec_unref_locked(e);
                                break; /* the list may have changed: scan again */
                        }
                        e = next;
                }
                if (due)
                        continue;
                if (q.watch_stop)
                        break;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 20 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void)pthread_cond_timedwait(&q.deadline_cond, &q.lock, &ts);
        }
        pthread_mutex_unlock(&q.lock);
        return NULL;
}

bool audit_rec_done(audit_rec *e, unsigned wait_us) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_us * 1000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&q.lock);
        while (e && e->state != AUDIT_REC_DONE && wait_us &&
               pthread_cond_timedwait(&q.done, &q.lock, &ts) != ETIMEDOUT)
                ;
        bool d = !e || e->state == AUDIT_REC_DONE;
        pthread_mutex_unlock(&q.lock);
        return d;
}

int audit_rec_watch(audit_rec *e, uint64_t deadline_ms, void (*wake)(void *ud), void *ud) {
        pthread_mutex_lock(&q.lock);
        if (!e || e->state == AUDIT_REC_DONE || q.watch_stop || !q.deadline_started || e->wake) {
                pthread_mutex_unlock(&q.lock);
                return 1;
        }
        e->wake = wake;
        e->wake_ud = ud;
        e->wake_deadline_ms = deadline_ms;
        e->refs++; /* the watch's */
        e->wprev = NULL;
        e->wnext = q.watch;
        if (q.watch)
                q.watch->wprev = e;
        q.watch = e;
        pthread_mutex_unlock(&q.lock);
        return 0;
}

void audit_watch_stop(void) {
        pthread_mutex_lock(&q.lock);
        q.watch_stop = true;
        pthread_cond_signal(&q.deadline_cond);
        bool started = q.deadline_started;
        q.deadline_started = false;
        pthread_mutex_unlock(&q.lock);
        if (started)
                pthread_join(q.deadline_thread, NULL); /* it wakes every watched request first */
}

static void *writer_main(void *arg) {
        (void)arg;
        pthread_mutex_lock(&q.lock);
        for (;;) {
                while (!q.head)
                        pthread_cond_wait(&q.work, &q.lock);
                audit_rec *e = q.head;
                q.head = e->next;
                if (!q.head)
                        q.tail = NULL;
                q.n--;
                q.bytes -= e->len;
                if (e->state == AUDIT_REC_WITHDRAWN) { /* its waiter gave up before it was taken */
                        rec_unref_locked(e);
                        continue;
                }
                e->state = AUDIT_REC_TAKEN;
                q.busy_since_ms = now_ms();
                pthread_mutex_unlock(&q.lock);
                int r = audit_writer_do(e); /* the I/O, holding no lock */
                pthread_mutex_lock(&q.lock);
                q.busy_since_ms = 0;
                e->result = r;
                e->state = AUDIT_REC_DONE;
                pthread_cond_broadcast(&q.done);
                void *ud = NULL;
                void (*w)(void *) = watch_take_locked(e, &ud);
                if (w) {
                        pthread_mutex_unlock(&q.lock);
                        w(ud);
                        pthread_mutex_lock(&q.lock);
                        e->refs--; /* the watch's: the queue's is still held, freed below */
                }
                bool stop = e->kind == AUDIT_REC_STOP;
                rec_unref_locked(e);
                if (stop)
                        break;
        }
        q.ended = true;
        pthread_mutex_unlock(&q.lock);
        return NULL;
}

int audit_queue_start(void) {
        int r;

        if (q.started)
                return 0;
        q.ended = false; /* before any other thread */
        pthread_mutex_lock(&q.lock);
        r = pthread_create(&q.thread, NULL, writer_main, NULL);
        if (r == 0) {
                q.started = true;
                /* Without it, requests wait on their own thread (audit_rec_watch says 1). */
                q.deadline_started = pthread_create(&q.deadline_thread, NULL, deadline_main, NULL) == 0;
        }
        pthread_mutex_unlock(&q.lock);
        return -r;
}

bool audit_queue_stop(unsigned timeout_ms) {
        audit_rec *e;
        struct timespec ts;

        if (!q.started)
                return true;
        e = calloc(1, sizeof(*e));
        if (!e)
                return false;
        e->kind = AUDIT_REC_STOP;
        e->fd = -1;
        (void)audit_queue_push(e, false);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(q.thread, NULL, &ts) != 0)
                return false; /* stalled in a write: leave it (the process is exiting) */
        pthread_mutex_lock(&q.lock);
        q.started = false;
        pthread_mutex_unlock(&q.lock);
        return true;
}

int audit_queue_push(audit_rec *e, bool waiter) {
        bool control = e->kind != AUDIT_REC_RECORD;

        pthread_mutex_lock(&q.lock);
        if (!control && (q.n >= QUEUE_ENTRIES_MAX || q.bytes + e->len > QUEUE_BYTES_MAX || !q.started || q.ended)) {
                pthread_mutex_unlock(&q.lock);
                return -EAGAIN;
        }
        e->state = AUDIT_REC_QUEUED;
        e->refs = waiter ? 2 : 1;
        e->next = NULL;
        if (q.tail)
                q.tail->next = e;
        else
                q.head = e;
        q.tail = e;
        q.n++;
        q.bytes += e->len;
        pthread_cond_signal(&q.work);
        pthread_mutex_unlock(&q.lock);
        return 0;
}

bool audit_queue_stalled(unsigned ms, uint64_t *ret_for_ms) {
        pthread_mutex_lock(&q.lock);
        uint64_t since = q.busy_since_ms, now = now_ms();
        pthread_mutex_unlock(&q.lock);
        if (ret_for_ms)
                *ret_for_ms = since ? now - since : 0;
        return since && now - since > ms;
}

int audit_rec_wait(audit_rec *e, uint64_t deadline_ms) {
        struct timespec ts;
        int r;

        if (!e)
                return 0;
        pthread_mutex_lock(&q.lock);
        while (e->state != AUDIT_REC_DONE) {
                uint64_t now = now_ms();
                if (now >= deadline_ms)
                        break;
                /* q.done is a CLOCK_REALTIME condvar: wait in short steps
                 * and judge the deadline on the monotonic clock. */
                uint64_t step = deadline_ms - now < 50 ? deadline_ms - now : 50;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += (long)step * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void)pthread_cond_timedwait(&q.done, &q.lock, &ts);
        }
        if (e->state == AUDIT_REC_DONE) {
                r = e->result;
        } else {
                /* Not written in time.  Still queued: withdrawn, it is never
                 * written.  Being written (the writer is stalled in it): it
                 * may yet reach the file, saying a decision that was then
                 * answered 503 instead (the undo is the caller's). */
                if (e->state == AUDIT_REC_QUEUED)
                        e->state = AUDIT_REC_WITHDRAWN;
                r = -ETIMEDOUT;
        }
        bool counted = e->counted;
        rec_unref_locked(e);
        pthread_mutex_unlock(&q.lock);
        if (r == -ETIMEDOUT && counted)
                audit_note_timeout();
        return r;
}

void audit_rec_put(audit_rec *e) {
        if (!e)
                return;
        pthread_mutex_lock(&q.lock);
        rec_unref_locked(e);
        pthread_mutex_unlock(&q.lock);
}

uint64_t audit_deadline_ms(void) {
        return now_ms() + CB_AUDIT_WAIT_MS;
}

/* ---- group commit ---- */

/* Making records durable is this thread's job: at most CB_AUDIT_SYNC_MS
 * after a record is written, the log and the head checkpoint are
 * fdatasync'ed (a power loss loses at most that window; an admin write's
 * intent is synced by the writer before it counts as written). */
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
                if (__atomic_exchange_n(&sync_dirty, false, __ATOMIC_ACQ_REL) && sync_fd >= 0) {
                        (void)fdatasync(sync_fd); /* an error shows at the next write */
                        if (sync_head_fd >= 0)
                                (void)fdatasync(sync_head_fd);
                }
        }
        pthread_mutex_unlock(&sync_lock);
        return NULL;
}

void audit_sync_note_written(void) {
        __atomic_store_n(&sync_dirty, true, __ATOMIC_RELEASE); /* never waits on a sync in progress */
}

/* Called by the writer thread (open, reopen): it may wait for the sync
 * thread's fdatasync of the old file; no request waits on the writer
 * longer than its deadline. */
void audit_sync_set_fds(int fd, int head_fd) {
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

void audit_sync_shutdown(void) {
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
