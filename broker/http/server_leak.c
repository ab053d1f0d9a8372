/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outbound leak guard at the door of a sandbox's request (issue 17,
 * red team rt7 F2/F3): every request on a sandbox's listener that reaches
 * the HTTP server -- the injection proxy's and anything else -- has its
 * whole head as the tool sent it (the method, the request-target, every
 * header name and value) run through the live matcher before anything is
 * decided, answered or recorded.  A live secret value anywhere in it
 * refuses the request (403 leak_refused), and the refusal's record and
 * alert carry neither the method nor the target (either may be the value):
 * the secret's name, the form and which part of the head.  Tokens are left
 * to the routes (the tool's own rides in Authorization; proxy_route.c
 * refuses one anywhere it would go upstream).  Scanned under no lock, with
 * a reference to the live matcher (it guards itself).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "match.h"
#include "proxy_request.h" /* CB_PREQ_HEADERS_MAX */
#include "scan.h"
#include "server_internal.h"

typedef struct door_piece {
        size_t start, end; /* the piece in the scanned text (end: past its '\n') */
        const char *what; /* "method", "target", "header name", "header value" */
        unsigned ix;      /* the header's position (1-based) */
} door_piece;

typedef struct door_ctx {
        char *text;
        size_t n, cap;
        door_piece p[2 + 2 * (CB_PREQ_HEADERS_MAX + 1)];
        size_t np, nh;
        bool over;
        size_t hit_piece;
        server_door *out;
} door_ctx;

static void add(door_ctx *c, const char *s, size_t n, const char *what, unsigned ix) {
        if (c->over)
                return;
        if (n + 1 > c->cap - c->n) {
                size_t cap = c->cap ? c->cap : 4096;
                while (n + 1 > cap - c->n)
                        cap *= 2;
                char *t = malloc(cap);
                if (!t) {
                        c->over = true;
                        return;
                }
                if (c->text) {
                        memcpy(t, c->text, c->n);
                        sodium_memzero(c->text, c->cap);
                        free(c->text);
                }
                c->text = t;
                c->cap = cap;
        }
        size_t start = c->n;
        memcpy(c->text + c->n, s, n);
        c->n += n;
        c->text[c->n++] = '\n'; /* pieces apart: a value is not found across two */
        if (c->np < sizeof(c->p) / sizeof(c->p[0])) /* past that (more fields than the proxy takes): */
                c->p[c->np++] = (door_piece){ .start = start, .end = c->n, .what = what, .ix = ix };
        else                                         /* scanned all the same, said to be in the head */
                c->p[c->np - 1] = (door_piece){ .start = start, .end = c->n, .what = "head", .ix = 0 };
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_size,
                               const char *value, size_t value_size) {
        door_ctx *c = cls;
        unsigned ix = (unsigned)(++c->nh);
        (void)kind;
        add(c, name, name_size, "header name", ix);
        add(c, value ? value : "", value ? value_size : 0, "header value", ix);
        return MHD_YES;
}

static int on_hit(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        door_ctx *c = ctx;
        (void)label;
        if (!hit->name || !hit->name[0])
                return 0; /* a token: the routes' (the tool's own rides in its head) */
        c->out->found = true;
        snprintf(c->out->name, sizeof(c->out->name), "%s", hit->name);
        c->out->form = cb_scan_kind_name(hit->kind);
        c->out->where = "head";
        for (size_t i = 0; i < c->np; i++)
                if (hit->start < c->p[i].end) {
                        c->out->where = c->p[i].what;
                        c->out->header = c->p[i].ix;
                        c->hit_piece = i;
                        break;
                }
        return -ECANCELED; /* one is enough */
}

static int on_any(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        (void)hit, (void)label;
        *(bool *)ctx = true;
        return -ECANCELED;
}

void server_sandbox_door(request *rq, struct MHD_Connection *conn, server_door *out) {
        door_ctx c = { .out = out };
        cb_matcher *m;

        memset(out, 0, sizeof(*out));
        m = scanner_matcher_ref(); /* the matcher's own lock */
        if (!m) {
                out->unavailable = true;
                return;
        }
        add(&c, rq->method, strlen(rq->method), "method", 0);
        const char *target = rq->raw_target ? rq->raw_target : rq->url;
        add(&c, target, strlen(target), "target", 0);
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect, &c);
        if (c.over) {
                out->unavailable = true;
        } else {
                cb_scan_stream *st = cb_scan_stream_new(m, on_hit, NULL, &c);
                if (!st) {
                        out->unavailable = true;
                } else {
                        cb_scan_stream_size_hint(st, c.n);
                        (void)cb_scan_stream_feed(st, c.text, c.n);
                        (void)cb_scan_stream_finish(st);
                        cb_scan_stream_free(st);
                }
        }
        /* A value in a header's value: the header is named in the answer
         * and the record when its name, alone, carries nothing. */
        if (out->found && out->header && strcmp(out->where, "header value") == 0 && c.hit_piece > 0) {
                const door_piece *np = &c.p[c.hit_piece - 1];
                size_t nl = np->end - 1 - np->start;
                bool dirty = false;
                cb_scan_stream *st = nl < sizeof(out->hname) ? cb_scan_stream_new(m, on_any, NULL, &dirty) : NULL;
                if (st) {
                        (void)cb_scan_stream_feed(st, c.text + np->start, nl);
                        (void)cb_scan_stream_finish(st);
                        cb_scan_stream_free(st);
                        if (!dirty) {
                                memcpy(out->hname, c.text + np->start, nl);
                                out->hname[nl] = '\0';
                        }
                }
        }
        if (c.text) {
                sodium_memzero(c.text, c.cap);
                free(c.text);
        }
        cb_matcher_free(m);
}

int server_sandbox_door_refuse(request *rq, const server_door *d) {
        char where[96];
        int ret;

        if (d->unavailable)
                return reply_error(rq, 503, "unavailable", "the outbound leak guard cannot run: refused rather than "
                                   "unchecked");
        /* Neither the method nor the target goes into the record or the
         * alert: either may be the value. */
        rq->method = "-";
        rq->route = "sandbox.leak";
        if (d->hname[0])
                snprintf(where, sizeof(where), "header '%s'", d->hname);
        else if (d->header)
                snprintf(where, sizeof(where), "%s #%u", d->where, d->header);
        else
                snprintf(where, sizeof(where), "%s", d->where);
        rq->audit_extra = json_pack("{s:{s:s, s:s, s:s, s:s}}", "leak", "secret", d->name, "kind", "secret", "form",
                                    d->form, "where", where);
        ret = reply_error(rq, 403, "leak_refused", "the request's %s carries the live secret '%s' (%s form): the "
                          "outbound leak guard refuses a sandbox's request holding a secret value anywhere in its "
                          "head (method, target, header names and values)", where, d->name, d->form);
        json_decref(rq->audit_extra);
        rq->audit_extra = NULL;
        return ret;
}
