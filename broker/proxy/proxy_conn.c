/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's tool side: the MHD callbacks of a proxied request.  It takes
 * over a decided request (proxy_start), feeds the request body to the
 * transfer loop through a bounded buffer (proxy_feed, proxy_body_done), answers
 * once the upstream did (proxy_continue) and streams the response body back
 * (reader), parking the connection whenever there is nothing to move.  The
 * upstream side is proxy.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "error.h"
#include "proxy.h"
#include "proxy_job.h"
#include "match_unwrap.h"

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
        proxy_job *j = cls;
        ssize_t n;

        (void)pos;
        pthread_mutex_lock(&j->mu);
        if (j->blen) {
                size_t k = j->blen < max ? j->blen : max;
                memcpy(out, j->buf, k);
                memmove(j->buf, j->buf + k, j->blen - k);
                sodium_memzero(j->buf + j->blen - k, k);
                j->blen -= k;
                if (j->recv_paused && j->blen <= PROXY_BUF / 2) {
                        j->recv_paused = false;
                        proxy_job_poke_locked(j);         /* room again: the download goes on */
                }
                n = (ssize_t)k;
        } else if ((j->done && j->broken) || j->cancelled) {
                /* Ends in an error.  Said in a round of MHD's of its own:
                 * closing for an error in the round that also sent data
                 * leaves libmicrohttpd 0.9.75 holding the connection until
                 * its timeout (10 s) — so park it once and have the loop
                 * resume it at once.  Never parked while stopping. */
                if (!j->err_round && !proxy_is_stopping() && j->conn) {
                        j->err_round = true;
                        j->suspended = true;
                        MHD_suspend_connection(j->conn);
                        if (proxy_job_poke_locked(j)) {
                                pthread_mutex_unlock(&j->mu);
                                return 0;
                        }
                        j->suspended = false;             /* no loop to resume it: say it now */
                        MHD_resume_connection(j->conn);
                }
                n = MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (j->done) {
                n = MHD_CONTENT_READER_END_OF_STREAM;
        } else if (proxy_is_stopping()) {
                n = MHD_CONTENT_READER_END_WITH_ERROR;    /* never park a connection while stopping */
        } else {
                /* Nothing yet: park the connection; the loop resumes it. */
                j->suspended = true;
                MHD_suspend_connection(j->conn);
                n = 0;
        }
        pthread_mutex_unlock(&j->mu);
        return n;
}

static void reader_free(void *cls) {
        proxy_job_unref(cls);
}

/* A whole answer handed to MHD: wiped and freed with the response. */
typedef struct held_body {
        unsigned char *p;
        size_t n;                                         /* what ever held bytes */
} held_body;

static void held_free(void *cls) {
        held_body *hb = cls;

        if (hb->p) {
                sodium_memzero(hb->p, hb->n);
                free(hb->p);
        }
        free(hb);
}

/* Called again by handle() once the loop resumed the connection. */
int proxy_continue(request *rq) {
        proxy_job *j = rq->proxy;
        struct MHD_Response *resp;
        int ret;

        pthread_mutex_lock(&j->mu);
        if (!j->headers_done && !j->done && !j->cancelled && !proxy_is_stopping()) { /* woken early: wait on */
                j->suspended = true;
                MHD_suspend_connection(rq->conn);
                pthread_mutex_unlock(&j->mu);
                return MHD_YES;
        }
        if (!j->headers_done || (j->done && j->broken)) {
                /* It failed before the upstream's headers, or broke off
                 * before a byte of the answer went out: say why. */
                bool early = !j->headers_done;
                int status = early && j->fail_status ? j->fail_status : 502;
                char code[32], msg[512];
                snprintf(code, sizeof(code), "%s", early && j->fail_code[0] ? j->fail_code : "bad_gateway");
                snprintf(msg, sizeof(msg), "%s",
                         j->err[0] ? j->err : early ? "the upstream request failed" : "the upstream's answer broke off");
                pthread_mutex_unlock(&j->mu);
                rq->no_audit = true;                     /* the loop's record says it */
                return reply_error(rq, (unsigned)status, code, "%s", msg);
        }
        if (j->done && strcmp(j->method, "HEAD") != 0 && j->status != 204 && j->status != 304) {
                /* All of it is in: one answer with its length, written at
                 * once (the buffer moves to the response, which wipes it). */
                held_body *hb = malloc(sizeof(*hb));
                if (!hb) {
                        pthread_mutex_unlock(&j->mu);
                        return MHD_NO;
                }
                hb->p = j->buf;
                hb->n = j->bhigh;
                resp = MHD_create_response_from_buffer_with_free_callback_cls(j->blen, j->buf ? (void *)j->buf : (void *)"",
                                                                              held_free, hb);
                if (resp)
                        j->buf = NULL, j->blen = j->bcap = j->bhigh = 0;
                pthread_mutex_unlock(&j->mu);
                if (!resp) {
                        free(hb);
                        return MHD_NO;
                }
        } else {
                j->refs++;                                /* the response's reader holds one */
                pthread_mutex_unlock(&j->mu);
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, j, reader_free);
                if (!resp) {
                        proxy_job_unref(j);
                        return MHD_NO;
                }
        }
        for (size_t i = 0; i < j->nrh; i++) {
                char *colon = strchr(j->rh[i], ':');
                if (!colon)
                        continue;
                *colon = '\0';
                MHD_add_response_header(resp, j->rh[i], colon + 2);
                *colon = ':';
        }
        ret = MHD_queue_response(rq->conn, (unsigned)j->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

int proxy_release(request *rq) {
        proxy_job *j = rq->proxy;
        int r;

        rq->proxy_held = false;
        pthread_mutex_lock(&j->mu);
        j->refs++;                                        /* the loop's */
        pthread_mutex_unlock(&j->mu);
        r = proxy_pool_submit(j);
        if (r == 0)
                return 0;
        proxy_job_unref(j);                               /* the loop's, never taken */
        rq->proxy = NULL;
        proxy_job_unref(j);
        rq->answered = false;
        rq->no_audit = true; /* its allow is written; this failure to start is the broker's own */
        (void)reply_error(rq, 503, "unavailable", "cannot hand it to a transfer loop: %s", strerror(r));
        return -EIO;
}

void proxy_abort(request *rq) {
        proxy_job *j = rq->proxy;

        rq->proxy_held = false;
        rq->proxy = NULL;
        rq->answered = false;
        proxy_job_unref(j);                               /* the last reference: its slot is freed */
}

/* Refuse a request whose upload is under way (called with j->mu held):
 * the upstream transfer is cut before the body completes (so the
 * upstream never acts on it, and libcurl closes that connection), the
 * rest of the body is read and dropped, and the tool gets status. */
static void refuse_upload_locked(proxy_job *j, int status, const char *code, const char *msg) {
        if (j->cancelled || j->done)
                return;
        __atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED); /* on_progress reads it without j->mu */
        if (!j->headers_done && !j->fail_status) {
                j->fail_status = status;
                snprintf(j->fail_code, sizeof(j->fail_code), "%s", code);
        }
        snprintf(j->err, sizeof(j->err), "%s", msg);  /* said, and audited, even after the upstream's head */
        j->broken = true;
        if (j->ukept + j->ulen)
                sodium_memzero(j->ubuf, j->ukept + j->ulen);
        j->ulen = j->ukept = 0;
        j->ulost = true;
        if (j->held_charge) {
                /* A held body: its memory and its charge go now (the rest of
                 * the body is read and dropped, never held). */
                sodium_memzero(j->ubuf, j->ucap);
                free(j->ubuf);
                j->ubuf = NULL;
                j->ucap = j->lpend = 0;
                cb_held_give(&proxy_held, j->held_uid, j->held_charge);
                j->held_charge = 0;
        }
        proxy_job_poke_locked(j);                 /* the loop ends the transfer */
}

/* Make room for n more bytes of a held body (j->mu held): the buffer
 * grows (doubling, at most PROXY_HELD_MAX) and its growth is charged to
 * the launching user as it happens.  0, or refused (the tool is told). */
static int held_grow_locked(proxy_job *j, size_t n) {
        char msg[240];
        size_t need = j->lpend + n, cap = j->ucap;

        if (n > PROXY_HELD_MAX || need > PROXY_HELD_MAX) {
                snprintf(msg, sizeof(msg), "a sandbox's proxied request body over %d bytes is not forwarded (the "
                         "outbound leak guard holds and scans it first)", PROXY_HELD_MAX);
                refuse_upload_locked(j, 413, "too_large", msg);
                return -1;
        }
        while (cap < need)
                cap = cap * 2 < PROXY_HELD_MAX ? cap * 2 : PROXY_HELD_MAX;
        int r = cb_held_take(&proxy_held, j->held_uid, cap - j->ucap);
        unsigned char *nb = r == 0 ? malloc(cap) : NULL;
        if (!nb) {
                if (r == 0)
                        cb_held_give(&proxy_held, j->held_uid, cap - j->ucap);
                snprintf(msg, sizeof(msg), "too many request bodies being checked at once%s; try again",
                         r == -EDQUOT ? " for this user (at most a quarter of the broker's budget)" : "");
                refuse_upload_locked(j, 503, "unavailable", msg);
                return -1;
        }
        memcpy(nb, j->ubuf, j->lpend);
        sodium_memzero(j->ubuf, j->ucap);
        free(j->ubuf);
        j->ubuf = nb;
        j->held_charge += cap - j->ucap;
        j->ucap = cap;
        return 0;
}

/* The leak guard's matcher found a value in the held body (j->mu held:
 * feed runs under it). */
static int leak_hit(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        proxy_job *j = ctx;
        (void)label;
        if (!j->leak_found) {
                j->leak_found = true;
                snprintf(j->leak_name, sizeof(j->leak_name), "%s", hit->name ? hit->name : "");
                j->leak_kind = (int)hit->kind;
        }
        return -ECANCELED;
}

static void refuse_leak_locked(proxy_job *j) {
        char msg[400];

        if (j->leak_name[0])
                snprintf(msg, sizeof(msg), "the request's body carries the live secret '%s' (%s form): the outbound "
                         "leak guard refuses a sandbox's request holding a secret value; cut off before its body "
                         "reached the upstream", j->leak_name, cb_scan_kind_name((enum cb_scan_kind)j->leak_kind));
        else
                snprintf(msg, sizeof(msg), "the request's body carries a credbroker token: the outbound leak guard "
                         "refuses it; cut off before its body reached the upstream");
        refuse_upload_locked(j, 403, "leak_refused", msg);
}

static void refuse_override_locked(proxy_job *j) {
        char msg[300];

        snprintf(msg, sizeof(msg), "the request body carries %s: methods are sealed for '%s', so the request was cut "
                 "off before its body reached the upstream", j->scan.why ? j->scan.why : "a method override",
                 j->secret);
        refuse_upload_locked(j, 400, "method_override", msg);
}

/* A piece of the request body: into the upload buffer as far as it fits;
 * when full, park the connection until the loop has sent some (MHD then
 * hands us the rest again).  Once the upstream transfer has ended (failed
 * early), the rest is read and dropped.  Only a request the broker framed
 * with a body has an upload buffer: bytes for any other are a protocol
 * error, never copied. */
int proxy_feed(request *rq, const char *data, size_t *size) {
        proxy_job *j = rq->proxy;

        pthread_mutex_lock(&j->mu);
        /* A held body (the leak guard's) must be in within
         * PROXY_HELD_TIMEOUT_NS, refused or not: a trickle past it is cut
         * and its connection closed (its audit record says why); a stall
         * is MHD's idle timeout. */
        if (j->held_deadline_ns && proxy_now_ns() > j->held_deadline_ns) {
                refuse_upload_locked(j, 408, "request_timeout", "a sandbox's proxied request body must arrive whole "
                                     "within 60 s (the outbound leak guard holds it): cut off before its body "
                                     "reached the upstream, the connection closed");
                *size = 0;
                pthread_mutex_unlock(&j->mu);
                return MHD_NO;
        }
        if (!j->ubuf && !j->done && !j->cancelled)
                refuse_upload_locked(j, 400, "bad_request", "a request body the broker did not frame: refused");
        if (j->done || j->cancelled) {
                *size = 0;
        } else if (j->leak_st) {
                /* Held whole, scanned as it comes; nothing goes up yet. */
                if (*size > j->ucap - j->lpend && held_grow_locked(j, *size) < 0) {
                        ; /* refused */
                } else if (j->scan_on && *size && cb_ovscan_feed(&j->scan, (const unsigned char *)data, *size)) {
                        refuse_override_locked(j);
                } else {
                        memcpy(j->ubuf + j->lpend, data, *size);
                        (void)cb_scan_stream_feed(j->leak_st, j->ubuf + j->lpend, *size);
                        j->lpend += *size;
                        if (j->leak_found)
                                refuse_leak_locked(j);
                }
                *size = 0;
        } else {
                /* The body's first bytes stay after libcurl took them, so
                 * that it can send them again on a fresh connection (on_seek
                 * in proxy.c); a body longer than the buffer needs their
                 * room, and is then sent once or not at all. */
                if (j->ukept && *size > j->ucap - j->ukept - j->ulen) {
                        memmove(j->ubuf, j->ubuf + j->ukept, j->ulen);
                        sodium_memzero(j->ubuf + j->ulen, j->ukept);
                        j->ukept = 0;
                        j->ulost = true;
                }
                size_t room = j->ucap - j->ukept - j->ulen;
                size_t n = room < *size ? room : *size;
                /* Methods sealed: every byte is scanned before it may go. */
                if (j->scan_on && n && cb_ovscan_feed(&j->scan, (const unsigned char *)data, n)) {
                        refuse_override_locked(j);
                        *size = 0;
                        pthread_mutex_unlock(&j->mu);
                        return MHD_YES;
                }
                memcpy(j->ubuf + j->ukept + j->ulen, data, n);
                j->ulen += n;
                *size -= n;
                if (n && j->send_paused) {
                        j->send_paused = false;
                        proxy_job_poke_locked(j);         /* something to send: the upload goes on */
                }
                if (*size && !proxy_is_stopping()) {
                        j->suspended = true;
                        MHD_suspend_connection(rq->conn);
                } else if (*size) {
                        *size = 0;                        /* proxy_stopping: dropped */
                }
        }
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
}

/* The body is complete (MHD's final call): tell the loop — unless its last
 * field was a method override (the upload then never completes). */
void proxy_body_done(request *rq) {
        proxy_job *j = rq->proxy;

        pthread_mutex_lock(&j->mu);
        if (!j->ueof && j->scan_on && !j->cancelled && !j->done && cb_ovscan_end(&j->scan))
                refuse_override_locked(j);
        if (!j->ueof && j->leak_st && !j->cancelled && !j->done) {
                (void)cb_scan_stream_finish(j->leak_st);
                /* Once more without its line breaks: base64 wrapped as MIME
                 * or PEM writes it (match_unwrap.h); out of memory: refused. */
                if (!j->leak_found && j->lpend && cb_scan_has_breaks(j->ubuf, j->lpend) &&
                    cb_scan_unwrapped(j->leak_m, j->ubuf, j->lpend, leak_hit, j) == -ENOMEM) {
                        refuse_upload_locked(j, 503, "unavailable", "out of memory");
                        pthread_mutex_unlock(&j->mu);
                        return;
                }
                if (j->leak_found) {
                        refuse_leak_locked(j);
                } else {
                        j->ulen = j->lpend;               /* clean: all of it may go now */
                        j->lpend = 0;
                }
        }
        if (!j->ueof && !j->cancelled) {
                j->ueof = true;
                if (j->send_paused) {
                        j->send_paused = false;
                        proxy_job_poke_locked(j);         /* the upload can end */
                }
        }
        pthread_mutex_unlock(&j->mu);
}

/* The request is over for MHD (answered, failed or the client left). */
void proxy_request_done(request *rq) {
        proxy_job *j = rq->proxy;

        if (!j)
                return;
        pthread_mutex_lock(&j->mu);
        j->conn = NULL;
        if (!j->cancelled && !j->done) {
                __atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED); /* on_progress reads it without j->mu */
                proxy_job_poke_locked(j);                 /* the loop ends the transfer */
        }
        __atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED); /* on_progress reads it without j->mu */
        pthread_mutex_unlock(&j->mu);
        rq->proxy = NULL;
        proxy_job_unref(j);
}

/* Cut every job whose secret (by_accessor: token accessor) is key. */
static size_t cancel_matching(const char *key, bool by_accessor, const char *why) {
        size_t n = 0;

        pthread_mutex_lock(&proxy_jobs_mu);
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++) {
                proxy_job *j = proxy_jobs[i];
                if (!j || strcmp(by_accessor ? j->accessor : j->secret, key) != 0)
                        continue;
                pthread_mutex_lock(&j->mu);
                if (!j->cancelled && !j->done) {
                        /* the transfer aborts at its next progress call (on_progress reads it without j->mu) */
                        __atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED);
                        if (!j->headers_done && !j->fail_status) {
                                j->fail_status = 403;
                                snprintf(j->fail_code, sizeof(j->fail_code), "revoked");
                                snprintf(j->err, sizeof(j->err), "secret '%s': %s", j->secret, why);
                        }
                        j->broken = true;                    /* a started body ends in an error, not cleanly */
                        if (j->blen)
                                sodium_memzero(j->buf, j->blen);
                        j->blen = 0;
                        if (j->suspended && j->conn) {
                                j->suspended = false;
                                MHD_resume_connection(j->conn);
                        }
                        proxy_job_poke_locked(j);         /* the loop ends the transfer */
                        n++;
                }
                pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&proxy_jobs_mu);
        return n;
}

size_t proxy_cancel_secret(const char *secret, const char *why) {
        return cancel_matching(secret, false, why);
}

size_t proxy_cancel_accessor(const char *accessor, const char *why) {
        return cancel_matching(accessor, true, why);
}

/* Before MHD_stop_daemon: no connection may stay suspended. */
void proxy_stop(void) {
        pthread_mutex_lock(&proxy_jobs_mu);
        __atomic_store_n(&proxy_stopping, true, __ATOMIC_RELEASE);
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++) {
                proxy_job *j = proxy_jobs[i];
                if (!j)
                        continue;
                pthread_mutex_lock(&j->mu);
                __atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED); /* on_progress reads it without j->mu */
                if (j->suspended && j->conn) {
                        j->suspended = false;
                        MHD_resume_connection(j->conn);
                }
                proxy_job_poke_locked(j);                 /* the loop ends the transfer */
                pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&proxy_jobs_mu);
        /* Let the loops end the cancelled transfers (each was poked)
         * before the servers and the store go away. */
        for (int tries = 0; tries < 50; tries++) {
                bool busy = false;
                pthread_mutex_lock(&proxy_jobs_mu);
                for (size_t i = 0; i < PROXY_MAX_JOBS && !busy; i++)
                        busy = proxy_jobs[i] && !__atomic_load_n(&proxy_jobs[i]->finished, __ATOMIC_ACQUIRE);
                pthread_mutex_unlock(&proxy_jobs_mu);
                if (!busy)
                        break;
                struct timespec t = { 0, 100 * 1000 * 1000 };
                nanosleep(&t, NULL);
        }
        proxy_loop_stop();
}

/* Take over a decided request: start its transfer and park the connection
 * until the upstream answers (or, when a body follows, let MHD deliver it
 * to proxy_feed).  Takes sp->url and sp->headers. */
int proxy_start(request *rq, proxy_spec *sp) {
        proxy_job *j;
        int r, ret;

        j = calloc(1, sizeof(*j));
        if (!j) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        pthread_mutex_init(&j->mu, NULL);
        j->refs = 1;                                      /* ours until the loop has it */
        j->red = sp->red, sp->red = NULL;
        j->conn = rq->conn;
        memcpy(j->method, sp->method, sizeof(j->method));
        j->url = sp->url, sp->url = NULL;
        j->headers = sp->headers, sp->headers = NULL;
        j->expect_body = sp->expect_body;
        j->content_length = sp->content_length;
        j->ueof = !sp->expect_body;
        j->ucap = PROXY_BUF;
        if (sp->leak && sp->expect_body) {
                /* The leak guard holds the body whole: sized to it when
                 * its length is known. */
                j->leak_m = sp->leak, sp->leak = NULL;
                /* Charged as it is held (held_grow_locked), to the
                 * launching user, within a quarter of the budget. */
                j->ucap = sp->content_length >= 0 && sp->content_length < PROXY_BUF ? (size_t)sp->content_length + 1
                                                                                    : PROXY_BUF;
                j->held_uid = rq->acct_uid;
                j->held_deadline_ns = proxy_now_ns() + PROXY_HELD_TIMEOUT_NS;
                r = cb_held_take(&proxy_held, j->held_uid, j->ucap);
                if (r < 0) {
                        ret = reply_error(rq, 503, "unavailable", "too many request bodies being checked at once%s; "
                                          "try again", r == -EDQUOT ? " for this user (at most a quarter of the "
                                          "broker's budget)" : "");
                        goto out;
                }
                j->held_charge = j->ucap;
                if (!(j->leak_st = cb_scan_stream_new(j->leak_m, leak_hit, NULL, j))) {
                        ret = reply_error(rq, 503, "unavailable", "out of memory");
                        goto out;
                }
        }
        if (sp->expect_body && !(j->ubuf = malloc(j->ucap))) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        if (sp->expect_body && (sp->scan_body == CB_BODY_FORM || sp->scan_body == CB_BODY_MULTIPART ||
                                 sp->scan_body == CB_BODY_JSON)) {
                if (cb_ovscan_init(&j->scan, sp->scan_body, sp->boundary) < 0) {
                        ret = reply_error(rq, 503, "unavailable", "out of memory");
                        goto out;
                }
                j->scan_on = true;
        }
        j->dest = sp->dest;
        j->ca_file = sp->ca_file ? strdup(sp->ca_file) : NULL;
        j->pin = sp->pin ? strdup(sp->pin) : NULL;
        if ((sp->ca_file && !j->ca_file) || (sp->pin && !j->pin)) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        j->t0_ns = proxy_now_ns();
        j->uid = rq->peer.uid;
        j->pid = rq->peer.pid;
        j->tcp = rq->tcp;
        if (rq->sandbox)
                snprintf(j->sandbox, sizeof(j->sandbox), "%s", rq->sandbox);
        memcpy(j->exe_sha256_hex, rq->peer.exe_sha256_hex, sizeof(j->exe_sha256_hex));
        memcpy(j->secret, rq->secret, sizeof(j->secret));
        memcpy(j->client, rq->client, sizeof(j->client));
        memcpy(j->accessor, rq->accessor, sizeof(j->accessor));
        memcpy(j->path, sp->path, sizeof(j->path));
        memcpy(j->request_id, sp->request_id, sizeof(j->request_id));
        {
                /* The table is walked only as far as a free slot (from
                 * where the last one was taken), and counted by uid only
                 * once so many jobs are in flight that one uid could hold
                 * its cap: under the lock every proxied request takes. */
                static size_t hint;
                size_t slot = PROXY_MAX_JOBS, mine = 0;
                pthread_mutex_lock(&proxy_jobs_mu);
                if (proxy_jobs_n < PROXY_MAX_JOBS)
                        for (size_t k = 0; k < PROXY_MAX_JOBS; k++) {
                                size_t i = (hint + k) % PROXY_MAX_JOBS;
                                if (!proxy_jobs[i]) {
                                        slot = i;
                                        break;
                                }
                        }
                if (proxy_jobs_n >= PROXY_MAX_JOBS_PER_UID)
                        for (size_t i = 0; i < PROXY_MAX_JOBS; i++)
                                if (proxy_jobs[i] && proxy_jobs[i]->uid == j->uid)
                                        mine++;
                /* One uid may not take every slot (streams can be long). */
                if (mine >= PROXY_MAX_JOBS_PER_UID) {
                        pthread_mutex_unlock(&proxy_jobs_mu);
                        ret = reply_error(rq, 429, "too_many_requests", "uid %u has %d proxied requests in flight "
                                          "already", (unsigned)j->uid, PROXY_MAX_JOBS_PER_UID);
                        goto out;
                }
                bool stopping = proxy_is_stopping();
                if (slot < PROXY_MAX_JOBS && !stopping) {
                        proxy_jobs[slot] = j;
                        j->slot = slot;
                        j->in_table = true;
                        proxy_jobs_n++;
                        hint = slot + 1;
                }
                pthread_mutex_unlock(&proxy_jobs_mu);
                if (stopping) {
                        ret = reply_error(rq, 503, "unavailable", "the broker is stopping");
                        goto out;
                }
                if (slot == PROXY_MAX_JOBS) {
                        ret = reply_error(rq, 503, "unavailable", "%d proxied requests in flight already",
                                          PROXY_MAX_JOBS);
                        goto out;
                }
        }
        /* Decided under no daemon-wide lock, so a leak response (or any
         * revocation) may have run since the token was checked.  A leak
         * response revokes (the fence moves), then cuts what is in the
         * jobs table.  The job is in the table now: a cut that comes
         * later finds it (nothing has gone upstream yet); one that came
         * earlier followed its revocation, which moved the fence before
         * this read -- then the token is looked at again, and a revoked
         * one refused (used up by this very request, or expired since:
         * not a revocation).  So no job starts with a token revoked by a
         * revocation that had answered before this decision. */
        if (sp->token && cb_tokens_fence(proxy_cur.tokens) != sp->fence) {
                const cb_token_info *again;
                int pr = cb_tokens_peek(proxy_cur.tokens, sp->token, strlen(sp->token), &again);
                if (pr < 0 && pr != -EDQUOT && pr != -ETIME) {
                        ret = reply_error(rq, 403, "revoked", "secret '%s': the token was revoked while the "
                                          "request was decided: %s", rq->secret, cb_error_last());
                        goto out;
                }
        }
        if (rq->n_audit_recs) {
                /* Its record is queued: nothing goes upstream until it is
                 * written (server_reply.c flush(), holding no lock, then
                 * proxy_release or proxy_abort). */
                rq->proxy = j;
                rq->proxy_held = true;
                j = NULL;
                ret = MHD_YES;
                goto out;
        }
        j->refs = 2;                                      /* this request, the loop */
        r = proxy_pool_submit(j);
        if (r != 0) {
                j->refs = 1;
                ret = reply_error(rq, 503, "unavailable", "cannot hand it to a transfer loop: %s", strerror(r));
                goto out;
        }
        rq->proxy = j;
        j = NULL;
        /* MHD calls again: with the body's pieces (proxy_feed), then once
         * more at its end, where proxy_continue parks the connection until
         * the upstream answers.  Not here: MHD has not asked for it yet. */
        ret = MHD_YES;
out:
        if (j)
                proxy_job_unref(j);
        if (sp->url) {
                sodium_memzero(sp->url, strlen(sp->url));
                free(sp->url);
                sp->url = NULL;
        }
        proxy_slist_wipe_free(sp->headers);
        sp->headers = NULL;
        cb_matcher_free(sp->red);
        sp->red = NULL;
        return ret;
}
