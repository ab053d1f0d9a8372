/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's transfer loops: threads that run the upstream transfers
 * (libcurl's multi interface on their own epoll) and the TCP listener's
 * servers.  proxy.c sets a transfer up and says how it ended; this file
 * schedules it: the inbox, pokes, batched wakes, pause and unpause.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "error.h"
#include "proxy.h"
#include "proxy_job.h"

/* Wakes are batched: the loop's callbacks queue them (proxy_wake_later_locked,
 * j->mu held) and the loop delivers them once per pass, after curl is
 * through with what arrived.  A small answer whose head and body came in
 * one read is then complete when the MHD side resumes, and goes out in one
 * write with its length instead of chunk by chunk; a stream still reaches
 * the tool piece by piece, each pass.  Each loop thread's own. */
static _Thread_local proxy_job *wake_head;

void proxy_wake_later_locked(proxy_job *j) {
        if (j->wake_queued)
                return;
        j->wake_queued = true;
        j->refs++;                                        /* dropped in wake_all */
        j->next_wake = wake_head;
        wake_head = j;
}

static void wake_all(void) {
        while (wake_head) {
                proxy_job *j = wake_head;
                wake_head = j->next_wake;
                pthread_mutex_lock(&j->mu);
                j->wake_queued = false;
                proxy_job_wake_locked(j);
                pthread_mutex_unlock(&j->mu);
                proxy_job_unref(j);
        }
}

/* ---- the transfer loops -------------------------------------------------------
 * Loop threads (--threads of them) run every upstream transfer, each on
 * its own libcurl multi handle (whose connection cache keeps upstream
 * connections open across requests).  The MHD threads hand them jobs
 * (proxy_pool_submit, round robin) and poke a job's loop when its paused
 * transfer may go on or it was cancelled; both write the loop's eventfd.
 * A loop waits in epoll on curl's sockets (curl_multi_socket_action: only
 * the transfer whose socket is ready runs), its eventfd and the epoll fd
 * of its server of the TCP listener (MHD without a thread of its own), so
 * a proxied request over TCP is read, decided, sent upstream and answered
 * on one thread.  Callbacks never wait: a full response buffer pauses the
 * download, an empty request buffer the upload. */
#define HANDLES_KEPT 64
#define IDLE_FDS 65536                        /* descriptors above this are always looked up */
#define LOOPS_MAX 64
/* A loop with no transfer for this long gives back its pooled upstream
 * connections (each a socket and its TLS state, ~50-90 KiB) and its kept
 * handles (their buffers): after a burst, 100+ of them held ~10 MB of an
 * idle daemon (tests/bench/soak.sh).  Cost: the next request after a quiet
 * half-minute makes a new connection (TLS resumed from the share's session
 * cache); upstreams close idle connections about as soon anyway. */
#define POOL_IDLE_NS (30ull * 1000000000u)

struct proxy_loop {
        pthread_t thread;
        CURLM *multi;
        int ep;                               /* its epoll: curl's sockets, wake_fd, driven_fd */
        int wake_fd;                          /* eventfd: written to wake the loop */
        int idle_ep;                          /* epoll of pooled upstream connections (see idle_watch) */
        unsigned char idle_bits[IDLE_FDS / 8];  /* the loop thread's: which descriptors idle_ep holds */
        unsigned char busy_bits[IDLE_FDS / 8];  /* the loop thread's: which ones libcurl watches (in use) */
        uint64_t curl_due_ns;                 /* curl's one-shot timer (0: none), the loop thread's */
        struct MHD_Daemon *driven;            /* a TCP listener's server it runs, or NULL */
        int driven_fd;                        /* its epoll fd */
        /* under inbox_mu */
        proxy_job *new_head, **new_tail, *poke_head;
        /* the loop thread's own */
        proxy_job *active[PROXY_MAX_JOBS];
        size_t n_active;
        CURL *kept[HANDLES_KEPT];
        size_t n_kept;
        uint64_t idle_since_ns;               /* no transfer since (0: busy; UINT64_MAX: pool given back) */
};

static proxy_loop loops[LOOPS_MAX];
static unsigned n_loops, next_loop;                      /* under inbox_mu */
static unsigned n_threads;                              /* loop threads running */
static bool loops_started, loops_quit;                  /* under inbox_mu */
static pthread_mutex_t inbox_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local proxy_loop *this_loop;

static void handle_put(proxy_loop *l, CURL *h) {
        if (l->n_kept < HANDLES_KEPT) {
                curl_easy_reset(h);
                l->kept[l->n_kept++] = h;
        } else {
                curl_easy_cleanup(h);
        }
}

/* A pooled upstream connection must say nothing until it is asked again:
 * bytes arriving while it is idle (an upstream's second, unsolicited
 * answer) would be read as the answer to the next request sent on it —
 * another tool's — and libcurl 7.88 reuses a connection with bytes
 * pending.  So each idle one is watched (idle_ep, inside the loop's
 * epoll), and one that becomes readable is shut down: libcurl then finds
 * it dead.  It leaves the watch when libcurl takes it up again (on_socket)
 * or closes it (epoll drops a closed descriptor). */
static void bit_set(unsigned char *bits, int fd, bool on) {
        if (fd >= 0 && fd < IDLE_FDS) {
                if (on)
                        bits[fd / 8] |= (unsigned char)(1u << (fd % 8));
                else
                        bits[fd / 8] &= (unsigned char)~(1u << (fd % 8));
        }
}

static void idle_mark(proxy_loop *l, int fd, bool on) {
        bit_set(l->idle_bits, fd, on);
}

/* After its transfer ended (in finish_done, once curl_multi_socket_action
 * returned): unless libcurl already took it up again for another transfer
 * in that same call (it then watches it). */
static void idle_watch(proxy_loop *l, curl_socket_t s) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = s };

        if (s < 0 || s >= IDLE_FDS || (l->busy_bits[s / 8] & (1u << (s % 8))))
                return;

        if (epoll_ctl(l->idle_ep, EPOLL_CTL_ADD, s, &ev) < 0 && errno == EEXIST)
                (void)epoll_ctl(l->idle_ep, EPOLL_CTL_MOD, s, &ev);
        idle_mark(l, s, true);
}

/* libcurl takes s up again, or drops it: out of the watch. */
static void idle_unwatch(proxy_loop *l, curl_socket_t s) {
        if (s >= 0 && s < IDLE_FDS && !(l->idle_bits[s / 8] & (1u << (s % 8))))
                return;                           /* not watched: no system call */
        (void)epoll_ctl(l->idle_ep, EPOLL_CTL_DEL, s, NULL);
        idle_mark(l, s, false);
}

/* End a pooled connection libcurl still holds, so that its liveness check
 * finds it dead.  shutdown() alone is not enough over TLS: the bytes that
 * made it readable (a close_notify: nginx ending an idle connection) stay
 * queued, libcurl's check peeks one and calls it alive, and the request
 * written to it fails with EPIPE; when a peak's connections are ended
 * together, libcurl's five resends each take the next such one and the
 * request fails (issue 19's soak: 502 "Send failure: Broken pipe").  So
 * the descriptor is made an unconnected socket of the same family (dup3:
 * the connection itself is closed): a peek answers ENOTCONN, a poll HUP,
 * and libcurl drops it without writing to it. */
static void conn_kill(proxy_loop *l, int fd) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int d;

        (void)shutdown(fd, SHUT_RDWR);
        /* One libcurl watches belongs to a transfer: its socket stays (the
         * epoll set holds that file); shut down, it fails and is resent. */
        if (fd < 0 || fd >= IDLE_FDS || (l->busy_bits[fd / 8] & (1u << (fd % 8))))
                return;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
                return;
        proxy_conn_forget(fd);                     /* its local port is nobody's now */
        d = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (d < 0)
                return;                            /* shut down: the request costs a resend */
        (void)dup3(d, fd, O_CLOEXEC);
        close(d);
}

static void idle_ready(proxy_loop *l) {
        struct epoll_event evs[16];
        int n = epoll_wait(l->idle_ep, evs, 16, 0);

        for (int i = 0; i < n; i++) {
                idle_unwatch(l, evs[i].data.fd);
                conn_kill(l, evs[i].data.fd);
        }
}

/* The transfer is over (c: its result): out of the multi handle, the
 * handle kept for the next job, then proxy_job_finished. */
static void job_finish(proxy_loop *l, proxy_job *j, CURLcode c) {
        /* Stopped before sending because libcurl offered another uid's
         * pooled connection (on_prereq): once more, on a fresh one. */
        if (j->in_multi && c == CURLE_ABORTED_BY_CALLBACK && j->foreign_conn && !j->fresh &&
            !__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
                j->foreign_conn = false;
                j->fresh = true;
                curl_multi_remove_handle(l->multi, j->h);
                curl_easy_setopt(j->h, CURLOPT_FRESH_CONNECT, 1L);
                if (curl_multi_add_handle(l->multi, j->h) == CURLM_OK)
                        return;
                j->in_multi = false;
                l->active[j->active_idx] = l->active[--l->n_active];
                l->active[j->active_idx]->active_idx = j->active_idx;
                proxy_job_fail(j, 500, "internal", "libcurl: cannot restart the transfer");
                c = CURLE_FAILED_INIT;
        }
        /* An exchange that was not clean: its connection, which libcurl
         * may have pooled, is shut down now (libcurl finds it dead and
         * never reuses it).  A failed transfer's libcurl closed itself. */
        if (j->in_multi && c == CURLE_OK) {
                curl_socket_t s = CURL_SOCKET_BAD;
                if (curl_easy_getinfo(j->h, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK && s != CURL_SOCKET_BAD) {
                        if (!proxy_job_reusable(j))
                                (void)shutdown(s, SHUT_RDWR); /* its bytes pending: EPIPE, a resend at worst */
                        else
                                idle_watch(l, s);
                }
        }
        if (j->in_multi) {
                curl_multi_remove_handle(l->multi, j->h);
                j->in_multi = false;
                l->active[j->active_idx] = l->active[--l->n_active];
                l->active[j->active_idx]->active_idx = j->active_idx;
        }
        if (j->h) {
                handle_put(l, j->h);
                j->h = NULL;
        }
        proxy_job_finished(j, c);
}

static void job_start(proxy_loop *l, proxy_job *j) {
        CURL *h;

        if (__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
                job_finish(l, j, CURLE_ABORTED_BY_CALLBACK);
                return;
        }
        h = l->n_kept ? l->kept[--l->n_kept] : curl_easy_init();
        if (!h) {
                proxy_job_fail(j, 500, "internal", "libcurl: no handle");
                job_finish(l, j, CURLE_OUT_OF_MEMORY);
                return;
        }
        proxy_job_setup(j, h);
        if (curl_multi_add_handle(l->multi, h) != CURLM_OK) {
                proxy_job_fail(j, 500, "internal", "libcurl: cannot start the transfer");
                job_finish(l, j, CURLE_FAILED_INIT);
                return;
        }
        j->in_multi = true;
        j->active_idx = l->n_active;
        l->active[l->n_active++] = j;
}

/* A poke: unpause (both ways: a side with nothing to do pauses again at
 * once) or, cancelled, end the transfer.  Drops the poke's reference. */
static void job_poked(proxy_loop *l, proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        j->poked = false;
        pthread_mutex_unlock(&inbox_mu);
        pthread_mutex_lock(&j->mu);
        bool cancelled = j->cancelled;
        if (j->in_multi)
                j->recv_paused = j->send_paused = false;
        else
                proxy_wake_later_locked(j);                     /* finished: the MHD side asks to go on */
        pthread_mutex_unlock(&j->mu);
        if (j->in_multi) {
                CURLcode rc = CURLE_OK;
                if (cancelled)
                        job_finish(l, j, CURLE_ABORTED_BY_CALLBACK);
                else if ((rc = curl_easy_pause(j->h, CURLPAUSE_CONT)) != CURLE_OK && j->in_multi)
                        job_finish(l, j, rc);             /* the held data could not be delivered */
        }
        proxy_job_unref(j);
}

static void finish_done(proxy_loop *l) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(l->multi, &left))) {
                if (m->msg != CURLMSG_DONE)
                        continue;
                proxy_job *j = NULL;
                CURLcode c = m->data.result;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
                if (j)
                        job_finish(l, j, c);
        }
}

/* Tags in the loop's epoll data: what became ready. */
#define EV_CURL  0u
#define EV_WAKE  1u
#define EV_MHD   2u
#define EV_IDLE  3u
#define EV_DATA(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

/* curl tells which sockets it wants watched, and how. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
        proxy_loop *l = userp;
        struct epoll_event ev = { .data.u64 = EV_DATA(EV_CURL, s) };

        (void)e;
        idle_unwatch(l, s);                       /* in use again (or gone): not idle */
        bit_set(l->busy_bits, s, what != CURL_POLL_REMOVE);
        if (what == CURL_POLL_REMOVE) {
                if (socketp) {
                        (void)epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL);
                        curl_multi_assign(l->multi, s, NULL);
                }
                return 0;
        }
        ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
        if (epoll_ctl(l->ep, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0) {
                if (errno == EEXIST)
                        (void)epoll_ctl(l->ep, EPOLL_CTL_MOD, s, &ev);
                else if (errno == ENOENT)
                        (void)epoll_ctl(l->ep, EPOLL_CTL_ADD, s, &ev);
                else
                        return -1;                        /* curl fails the transfer */
        }
        if (!socketp)
                curl_multi_assign(l->multi, s, l);
        return 0;
}

/* curl's timer: one shot, due ms from now (-1: none). */
static int on_timer(CURLM *m, long ms, void *userp) {
        proxy_loop *l = userp;

        (void)m;
        l->curl_due_ns = ms < 0 ? 0 : proxy_now_ns() + (uint64_t)ms * 1000000u;
        return 0;
}

/* Run curl's timer if it is due (it is consumed: curl sets the next). */
static void curl_timer_run(proxy_loop *l) {
        int running;

        if (l->curl_due_ns && proxy_now_ns() >= l->curl_due_ns) {
                l->curl_due_ns = 0;
                curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
}

static void loop_wake(proxy_loop *l) {
        uint64_t one = 1;

        (void)!write(l->wake_fd, &one, sizeof(one));       /* full (2^64-2): it is awake anyway */
}

static CURLM *multi_new(proxy_loop *l);

/* Once a pass: after POOL_IDLE_NS without a transfer, the kept handles and
 * the multi handle's idle connections go (a fresh multi handle replaces it). */
static void loop_idle(proxy_loop *l) {
        uint64_t now = proxy_now_ns();
        CURLM *m;

        if (l->n_active) {
                l->idle_since_ns = 0;
                return;
        }
        if (!l->idle_since_ns) {
                l->idle_since_ns = now;
                return;
        }
        if (l->idle_since_ns == UINT64_MAX || now - l->idle_since_ns < POOL_IDLE_NS)
                return;
        l->idle_since_ns = UINT64_MAX;
        while (l->n_kept)
                curl_easy_cleanup(l->kept[--l->n_kept]);
        m = multi_new(l);
        if (!m)
                return; /* keep the old one: it still works */
        curl_multi_cleanup(l->multi); /* closes its connections (their sockets leave the epoll set) */
        l->multi = m;
        l->curl_due_ns = 0;
}

static void *loop_main(void *arg) {
        proxy_loop *l = arg;
        struct epoll_event evs[64];

        this_loop = l;
        for (;;) {
                int running = 0, timeout = 1000, n;
                bool mhd_due = false, mhd_ready = false;

                if (l->curl_due_ns) {
                        uint64_t now = proxy_now_ns();
                        uint64_t left = l->curl_due_ns > now ? (l->curl_due_ns - now + 999999u) / 1000000u : 0;
                        if (left < (uint64_t)timeout)
                                timeout = (int)left;
                }
                if (l->driven) {
                        MHD_UNSIGNED_LONG_LONG mt;
                        if (MHD_get_timeout(l->driven, &mt) == MHD_YES && mt <= (MHD_UNSIGNED_LONG_LONG)timeout) {
                                timeout = (int)mt;
                                mhd_due = true;
                        }
                }
                /* Work this thread queued for itself (a request decided or
                 * a poke made in the last MHD_run) has no wake: no wait. */
                pthread_mutex_lock(&inbox_mu);
                if (l->new_head || l->poke_head)
                        timeout = 0;
                pthread_mutex_unlock(&inbox_mu);
                n = epoll_wait(l->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
                for (int i = 0; i < n; i++) {
                        unsigned kind = (unsigned)(evs[i].data.u64 >> 32);
                        int fd = (int)(uint32_t)evs[i].data.u64;
                        if (kind == EV_WAKE) {
                                uint64_t v;
                                (void)!read(l->wake_fd, &v, sizeof(v));
                        } else if (kind == EV_MHD) {
                                mhd_ready = true;
                        } else if (kind == EV_IDLE) {
                                idle_ready(l);
                        } else {
                                int mask = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                                           ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                                           ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
                                curl_multi_socket_action(l->multi, fd, mask, &running);
                        }
                }
                if (l->driven && (mhd_ready || mhd_due))
                        MHD_run(l->driven);               /* may decide requests: jobs for the inbox */
                pthread_mutex_lock(&inbox_mu);
                proxy_job *nj = l->new_head, *pj = l->poke_head;
                l->new_head = NULL;
                l->new_tail = &l->new_head;
                l->poke_head = NULL;
                bool quit = loops_quit;
                pthread_mutex_unlock(&inbox_mu);
                while (nj) {
                        proxy_job *next = nj->next_new;
                        job_start(l, nj);
                        nj = next;
                }
                while (pj) {
                        proxy_job *next = pj->next_poke;
                        job_poked(l, pj);
                        pj = next;
                }
                /* New and unpaused transfers are due at once (curl set
                 * its timer to 0 for them); so is an expired timer. */
                curl_timer_run(l);
                finish_done(l);
                if (quit) {
                        while (l->n_active)
                                job_finish(l, l->active[0], CURLE_ABORTED_BY_CALLBACK);
                        wake_all();
                        break;
                }
                bool woke = wake_head != NULL;
                wake_all();
                /* Answer what was just resumed in this same pass. */
                if (l->driven && woke)
                        MHD_run(l->driven);
                loop_idle(l);
        }
        while (l->n_kept)
                curl_easy_cleanup(l->kept[--l->n_kept]);
        return NULL;
}

static CURLM *multi_new(proxy_loop *l) {
        CURLM *m = curl_multi_init();

        if (!m)
                return NULL;
        curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(m, CURLMOPT_SOCKETDATA, l);
        curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(m, CURLMOPT_TIMERDATA, l);
        /* Keep idle upstream connections for the jobs in flight. */
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)PROXY_MAX_JOBS);
        curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        return m;
}

int proxy_loop_start(unsigned n, struct MHD_Daemon *const *drive) {
        sigset_t all, old;
        int r = 0;

        if (n == 0 || n > LOOPS_MAX)
                return cb_error_set(-EINVAL, "proxy loops: %u (1-%d)", n, LOOPS_MAX);
        for (unsigned i = 0; i < n; i++) {
                proxy_loop *l = &loops[i];
                l->new_head = l->poke_head = NULL;
                l->new_tail = &l->new_head;
                l->driven = NULL;
                l->driven_fd = -1;
                if (drive && drive[i]) {
                        const union MHD_DaemonInfo *di = MHD_get_daemon_info(drive[i], MHD_DAEMON_INFO_EPOLL_FD);
                        if (!di)
                                return cb_error_set(-EIO, "libmicrohttpd: no epoll fd for the TCP listener");
                        l->driven = drive[i];
                        l->driven_fd = di->epoll_fd;
                }
                l->curl_due_ns = 0;
                l->ep = epoll_create1(EPOLL_CLOEXEC);
                l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                l->idle_ep = epoll_create1(EPOLL_CLOEXEC);
                if (l->ep < 0 || l->wake_fd < 0 || l->idle_ep < 0)
                        return cb_error_set(-errno, "proxy loop: epoll/eventfd: %s", strerror(errno));
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_WAKE, l->wake_fd) };
                if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
                        return cb_error_set(-errno, "proxy loop: epoll_ctl: %s", strerror(errno));
                ev.data.u64 = EV_DATA(EV_IDLE, l->idle_ep);
                if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->idle_ep, &ev) < 0)
                        return cb_error_set(-errno, "proxy loop: epoll_ctl: %s", strerror(errno));
                if (l->driven) {
                        ev.data.u64 = EV_DATA(EV_MHD, l->driven_fd);
                        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->driven_fd, &ev) < 0)
                                return cb_error_set(-errno, "proxy loop: epoll_ctl: %s", strerror(errno));
                }
                l->multi = multi_new(l);
                if (!l->multi)
                        return cb_error_set(-ENOMEM, "libcurl: no multi handle");
                l->idle_since_ns = 0;
        }
        /* Jobs may come from the first pass on, and queue for a loop whose
         * thread is not running yet. */
        pthread_mutex_lock(&inbox_mu);
        loops_started = true;
        loops_quit = false;
        n_loops = n;
        pthread_mutex_unlock(&inbox_mu);
        /* No signal for these threads: the main thread takes them all. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        for (n_threads = 0; n_threads < n; n_threads++) {
                r = pthread_create(&loops[n_threads].thread, NULL, loop_main, &loops[n_threads]);
                if (r != 0)
                        break;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                proxy_loop_stop();
                return cb_error_set(-r, "cannot start the proxy's transfer threads: %s", strerror(r));
        }
        return 0;
}

/* After proxy_stop cancelled every job: end the loops (what they still
 * hold is finished as cancelled). */
void proxy_loop_stop(void) {
        pthread_mutex_lock(&inbox_mu);
        bool started = loops_started;
        loops_quit = true;
        pthread_mutex_unlock(&inbox_mu);
        if (!started)
                return;
        for (unsigned i = 0; i < n_threads; i++)
                loop_wake(&loops[i]);
        for (unsigned i = 0; i < n_threads; i++)
                pthread_join(loops[i].thread, NULL);
        n_threads = 0;
        pthread_mutex_lock(&inbox_mu);
        loops_started = false;
        pthread_mutex_unlock(&inbox_mu);
        for (unsigned i = 0; i < LOOPS_MAX && loops[i].multi; i++) {
                proxy_loop *l = &loops[i];
                /* Jobs queued after the loop's last look: never started. */
                proxy_job *nj = l->new_head, *pj = l->poke_head;
                l->new_head = l->poke_head = NULL;
                l->new_tail = &l->new_head;
                while (nj) {
                        proxy_job *next = nj->next_new;
                        __atomic_store_n(&nj->cancelled, true, __ATOMIC_RELAXED);
                        job_finish(l, nj, CURLE_ABORTED_BY_CALLBACK);
                        nj = next;
                }
                wake_all();
                while (pj) {
                        proxy_job *next = pj->next_poke;
                        proxy_job_unref(pj);
                        pj = next;
                }
                curl_multi_cleanup(l->multi);
                l->multi = NULL;
                close(l->ep);
                close(l->wake_fd);
                close(l->idle_ep);
                l->ep = l->wake_fd = l->idle_ep = -1;
                l->driven = NULL;                         /* server_stop stops it */
                l->driven_fd = -1;
        }
        pthread_mutex_lock(&inbox_mu);
        n_loops = 0;
        pthread_mutex_unlock(&inbox_mu);
}

/* Queue a job for a loop (the caller's own when it is one, else the next
 * in turn); 0 or a positive errno. */
int proxy_pool_submit(proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        if (loops_quit || !loops_started || n_loops == 0) {
                pthread_mutex_unlock(&inbox_mu);
                return ESHUTDOWN;
        }
        proxy_loop *l = this_loop ? this_loop : &loops[next_loop++ % n_loops];
        j->loop = l;
        j->next_new = NULL;
        *l->new_tail = j;
        l->new_tail = &j->next_new;
        /* Under the lock: the loop's descriptors are closed only once
         * loops_quit is set under it (an eventfd write never waits). */
        if (this_loop != l)                               /* else it takes the inbox next */
                loop_wake(l);
        pthread_mutex_unlock(&inbox_mu);
        return 0;
}

bool proxy_job_poke_locked(proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        proxy_loop *l = j->loop;
        if (!l || loops_quit || !loops_started) {
                pthread_mutex_unlock(&inbox_mu);
                return false;
        }
        if (j->poked) {
                pthread_mutex_unlock(&inbox_mu);
                return true;                              /* already on its way */
        }
        j->poked = true;
        j->refs++;                                        /* the loop drops it (job_poked) */
        j->next_poke = l->poke_head;
        l->poke_head = j;
        if (this_loop != l)
                loop_wake(l);                             /* under the lock: see proxy_pool_submit */
        pthread_mutex_unlock(&inbox_mu);
        return true;
}
