/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Making audit records, on any thread: identifiers keyed-hashed under
 * audit_rec_lock with the segment's keys, the record queued for the writer
 * (audit_queue.c); a request's decision record and an admin write's intent
 * are waited for before the request takes effect.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "alert.h"
#include "audit.h"
#include "audit_format.h"
#include "audit_internal.h"
#include "daemon.h"

/* ---- making records (any thread: audit_rec_lock) ---- */

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
         * together under audit_rec_lock (a reopen switches keys and segment
         * under it too). */
        pthread_mutex_lock(&audit_rec_lock);
        cb_audit_hide_ids(audit_id_keys, o);
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
        pthread_mutex_unlock(&audit_rec_lock);
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
        audit_enter_failed(r, r == -EAGAIN ? "the queue of records waiting to be written is full"
                                           : "queueing a record");
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

/* The request waits for e before its answer goes out (server_reply.c). */
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
                        audit_count_refused(); /* the caller refuses (503): counted in audit.resume */
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
                audit_count_refused();
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
