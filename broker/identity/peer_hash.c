/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Executable hashing off the serving threads (see peer.h).
 *
 * A cache miss means reading a whole file, up to CB_EXE_HASH_MAX bytes,
 * and a caller decides how often it misses (chmod its executable and the
 * key changes).  Done on a serving thread, that read stalls every request
 * queued behind it (issue 14: a granted tool timed out after 30 s while an
 * ungranted uid's 511 MiB sparse executable was hashed over and over).  So
 * the server suspends the request, a worker here hashes, and the request
 * resumes when its hash is known.  Bounded: QUEUE_MAX jobs waiting, and per
 * uid one job and HASH_BYTES_PER_MIN (peer.c), so one uid cannot fill the
 * queue or keep the workers for itself beyond its share.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>

#include "error.h"
#include "peer.h"
#include "peer_internal.h"

#define QUEUE_MAX   64
#define THREADS_MAX 8
#define WAITERS_MAX 4096   /* requests waiting on a job of another request */

/* Everyone waiting for one file's hash: concurrent first requests of one
 * program share a job (and its budget) instead of queuing their own. */
/* ---- per-uid hashing budget --------------------------------------------
 * A cache miss costs the broker a read of the whole file, and a caller
 * controls how often it misses (chmod or touch its executable: ctime moves,
 * the key changes).  So each uid may have one hash in progress and hash at
 * most HASH_BYTES_PER_MIN per minute; past that its requests are refused
 * (-EBUSY) until the minute is over, and other uids are not affected. */
#define HASH_UIDS_MAX       256
#define HASH_BYTES_PER_MIN  (UINT64_C(1) << 30)

static struct {
        pthread_mutex_t lock;
        struct {
                uid_t uid;
                unsigned inflight;
                time_t window;
                uint64_t bytes;
        } u[HASH_UIDS_MAX];
        size_t n;
} budget = { .lock = PTHREAD_MUTEX_INITIALIZER };

int cb_peer_budget_take(uid_t uid, uint64_t size, pid_t pid) {
        time_t now = time(NULL);
        size_t i, free_slot = SIZE_MAX;
        int r = 0;

        pthread_mutex_lock(&budget.lock);
        for (i = 0; i < budget.n && budget.u[i].uid != uid; i++)
                if (free_slot == SIZE_MAX && budget.u[i].inflight == 0 && now - budget.u[i].window >= 60)
                        free_slot = i;
        if (i == budget.n) {
                if (budget.n < HASH_UIDS_MAX)
                        i = budget.n++;
                else if (free_slot != SIZE_MAX)
                        i = free_slot;
                else {
                        r = cb_error_set(-EBUSY, "peer pid %d: too many uids are having executables hashed; retry "
                                                 "later", (int)pid);
                        goto out;
                }
                budget.u[i].uid = uid;
                budget.u[i].inflight = 0;
                budget.u[i].window = now;
                budget.u[i].bytes = 0;
        }
        if (now - budget.u[i].window >= 60) {
                budget.u[i].window = now;
                budget.u[i].bytes = 0;
        }
        if (budget.u[i].inflight > 0)
                r = cb_error_set(-EBUSY, "peer pid %d: uid %u already has an executable being hashed; retry "
                                         "later", (int)pid, (unsigned)uid);
        else if (budget.u[i].bytes + size > HASH_BYTES_PER_MIN)
                r = cb_error_set(-EBUSY, "peer pid %d: uid %u had %llu MiB of executables hashed this minute, "
                                         "the most one uid may (an executable that keeps changing is not "
                                         "hashed again without limit); retry later",
                                 (int)pid, (unsigned)uid, (unsigned long long)(budget.u[i].bytes >> 20));
        else {
                budget.u[i].inflight++;
                budget.u[i].bytes += size;
        }
out:
        pthread_mutex_unlock(&budget.lock);
        return r;
}

void cb_peer_budget_put(uid_t uid) {
        pthread_mutex_lock(&budget.lock);
        for (size_t i = 0; i < budget.n; i++)
                if (budget.u[i].uid == uid && budget.u[i].inflight > 0) {
                        budget.u[i].inflight--;
                        break;
                }
        pthread_mutex_unlock(&budget.lock);
}

typedef struct waiter {
        cb_exe_hash_done_fn fn;
        void *ud;
        struct waiter *next;
} waiter;

typedef struct job {
        cb_exe_cache *cache;
        pid_t pid;
        uid_t uid;
        struct stat st;
        waiter first;
        waiter *more;
} job;

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        job *q[QUEUE_MAX];
        size_t head, n;
        job *running[THREADS_MAX];
        size_t n_waiters;
        bool stopping;
        pthread_t threads[THREADS_MAX];
        unsigned n_threads;
} hq = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Tell everyone waiting on j, then free it.  Called without the lock,
 * after j left the queue and `running` (so no waiter can join it). */
static void finish(job *j, int r, const unsigned char *sha, const char *err) {
        waiter *w = j->more;
        size_t n = 0;

        j->first.fn(j->first.ud, r, sha, err);
        while (w) {
                waiter *next = w->next;
                /* Their process was not the one hashed through: a failure
                 * of that one (it exited) is theirs to retry. */
                w->fn(w->ud, r == -ESRCH ? -EAGAIN : r, sha, err);
                free(w);
                n++;
                w = next;
        }
        pthread_mutex_lock(&hq.lock);
        hq.n_waiters -= n;
        pthread_mutex_unlock(&hq.lock);
        free(j);
}

static void *worker(void *arg) {
        size_t me = (size_t)(uintptr_t)arg;

        pthread_mutex_lock(&hq.lock);
        for (;;) {
                while (hq.n == 0 && !hq.stopping)
                        pthread_cond_wait(&hq.cond, &hq.lock);
                if (hq.n == 0)
                        break; /* stopping, nothing left */
                job *j = hq.q[hq.head];
                hq.head = (hq.head + 1) % QUEUE_MAX;
                hq.n--;
                bool cancel = hq.stopping;
                hq.running[me] = j;
                pthread_mutex_unlock(&hq.lock);

                unsigned char sha[32];
                char exe[32], err[256] = "";
                int r = -ECANCELED;

                if (cancel) {
                        snprintf(err, sizeof(err), "the broker is stopping");
                } else {
                        snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)j->pid);
                        r = cb_peer_hash_file(exe, &j->st, j->cache, j->pid, sha);
                        if (r < 0)
                                snprintf(err, sizeof(err), "%s", cb_error_last());
                }
                cb_peer_budget_put(j->uid);
                pthread_mutex_lock(&hq.lock);
                hq.running[me] = NULL; /* from here on no waiter joins j */
                pthread_mutex_unlock(&hq.lock);
                finish(j, r, r == 0 ? sha : NULL, err);
                pthread_mutex_lock(&hq.lock);
        }
        pthread_mutex_unlock(&hq.lock);
        return NULL;
}

int cb_exe_hasher_start(unsigned threads) {
        if (threads == 0 || threads > THREADS_MAX)
                return cb_error_set(-EINVAL, "hash workers: %u is out of range", threads);
        pthread_mutex_lock(&hq.lock);
        hq.stopping = false;
        pthread_mutex_unlock(&hq.lock);
        for (unsigned i = 0; i < threads; i++) {
                int r = pthread_create(&hq.threads[i], NULL, worker, (void *)(uintptr_t)i);
                if (r != 0) {
                        cb_exe_hasher_stop();
                        return cb_error_set(-r, "hash worker: %s", strerror(r));
                }
                hq.n_threads++;
        }
        return 0;
}

void cb_exe_hasher_stop(void) {
        pthread_mutex_lock(&hq.lock);
        hq.stopping = true;
        pthread_cond_broadcast(&hq.cond);
        pthread_mutex_unlock(&hq.lock);
        for (unsigned i = 0; i < hq.n_threads; i++)
                pthread_join(hq.threads[i], NULL);
        hq.n_threads = 0;
}

/* A job for the same file, queued or running, to wait on (under the lock). */
static job *find_job(const struct stat *st) {
        for (size_t i = 0; i < hq.n; i++)
                if (same_file(&hq.q[(hq.head + i) % QUEUE_MAX]->st, st))
                        return hq.q[(hq.head + i) % QUEUE_MAX];
        for (size_t i = 0; i < THREADS_MAX; i++)
                if (hq.running[i] && same_file(&hq.running[i]->st, st))
                        return hq.running[i];
        return NULL;
}

int cb_exe_hash_submit(cb_exe_cache *cache, const cb_peer *p, cb_exe_hash_done_fn fn, void *ud) {
        job *j;
        int r;

        if (!p || !fn)
                return cb_error_set(-EINVAL, "cb_exe_hash_submit: no peer or callback");
        if (p->exe_st.st_size > CB_EXE_HASH_MAX)
                return cb_error_set(-EFBIG, "peer pid %d: its executable is %lld bytes, more than the %d MiB the "
                                            "broker will hash",
                                    (int)p->pid, (long long)p->exe_st.st_size, CB_EXE_HASH_MAX >> 20);
        /* Waiters join a queued or running job under the lock; a job
         * leaves `running` under the lock before finish() reads them. */
        pthread_mutex_lock(&hq.lock);
        if (!hq.stopping && (j = find_job(&p->exe_st)) != NULL && hq.n_waiters < WAITERS_MAX) {
                waiter *w = malloc(sizeof(*w));
                if (w) {
                        *w = (waiter){ .fn = fn, .ud = ud, .next = j->more };
                        j->more = w;
                        hq.n_waiters++;
                        pthread_mutex_unlock(&hq.lock);
                        return 0;
                }
        }
        pthread_mutex_unlock(&hq.lock);
        r = cb_peer_budget_take(p->uid, (uint64_t)p->exe_st.st_size, p->pid);
        if (r < 0)
                return r;
        j = calloc(1, sizeof(*j));
        if (!j) {
                cb_peer_budget_put(p->uid);
                return cb_error_set(-ENOMEM, "out of memory");
        }
        *j = (job){ .cache = cache, .pid = p->pid, .uid = p->uid, .st = p->exe_st, .first = { .fn = fn, .ud = ud } };
        pthread_mutex_lock(&hq.lock);
        if (hq.stopping || hq.n_threads == 0 || hq.n == QUEUE_MAX) {
                bool full = hq.n == QUEUE_MAX;
                pthread_mutex_unlock(&hq.lock);
                cb_peer_budget_put(p->uid);
                free(j);
                return cb_error_set(-EBUSY, "%s", full ? "too many executables are waiting to be hashed; retry later"
                                                      : "executable hashing is not running");
        }
        hq.q[(hq.head + hq.n) % QUEUE_MAX] = j;
        hq.n++;
        pthread_cond_signal(&hq.cond);
        pthread_mutex_unlock(&hq.lock);
        return 0;
}
