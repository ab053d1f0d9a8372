/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plain-HTTP forwarding out of a sandbox (sandbox_internal.h has the
 * contract): an absolute-form request ("GET http://host:port/path
 * HTTP/1.1", what a tool with HTTP_PROXY sends for http:// URLs) carrying
 * no broker token is checked like a CONNECT target (a name in the client's
 * egress.allow, no IP literal, the address it resolves to passing the SSRF
 * rules and being the one dialled), framed by the proxy's rules
 * (cb_preq_decide: no CL+TE, one plain Content-Length, chunked only...),
 * read whole (at most CB_FWD_BODY_MAX) and streamed through the live
 * matcher before a byte goes out: a request whose head or body carries a
 * live secret value or a broker token in any form the matcher knows is
 * refused (403), audited and alerted (the outbound leak guard).  The
 * request goes upstream as the broker frames it (Content-Length, the
 * tool's end-to-end headers, Connection: close) and the response comes
 * back with its head checked; the tool's connection then closes.
 * Everything here runs on the connection's own thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "egress.h"
#include "held.h"
#include "http1.h"
#include "match.h"
#include "match_unwrap.h"
#include "proxy_request.h"
#include "sandbox.h"
#include "sandbox_internal.h"

#define STEP_TIMEOUT_MS 10000          /* the head, each piece of the body, the connect */
#define BODY_TIMEOUT_MS 60000          /* the whole body */
#define RESP_HEAD_TIMEOUT_MS 120000    /* the upstream's response head */
#define IDLE_TIMEOUT_MS (300 * 1000)   /* the response body: nothing moves */
#define IO_BUF (64 * 1024)

/* Bodies held while they are scanned, all sandboxes together, charged as
 * they grow to the launching user (at most a quarter each, held.h). */
static cb_held_budget held_budget = CB_HELD_BUDGET_INIT(CB_FWD_HELD_MAX);

static uint64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A wait on fd that also ends when watch (the tool's connection, when fd
 * is the upstream's; -1: none) hangs up: teardown shuts the tool's
 * connection down and must not wait for an upstream.  1 ready, -1 not. */
static int wait_fd(int fd, short ev, int watch, uint64_t deadline) {
        for (;;) {
                struct pollfd pf[2] = { { .fd = fd, .events = ev }, { .fd = watch, .events = 0 } };
                uint64_t now = mono_ms();
                if (now >= deadline)
                        return -1;
                int k = poll(pf, watch >= 0 ? 2 : 1, (int)(deadline - now));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0 || (watch >= 0 && (pf[1].revents & (POLLHUP | POLLERR | POLLNVAL))))
                        return -1;
                if (pf[0].revents)
                        return 1;
        }
}

static int send_all(int fd, const void *p, size_t n, int watch) {
        const char *s = p;
        while (n) {
                if (wait_fd(fd, POLLOUT, watch, mono_ms() + IDLE_TIMEOUT_MS) < 0)
                        return -1;
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        return -1;
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

/* recv with a deadline: >0 bytes, 0 EOF, -1 error or timeout. */
static ssize_t recv_by(int fd, void *p, size_t n, uint64_t deadline, int watch) {
        for (;;) {
                if (wait_fd(fd, POLLIN, watch, deadline) < 0)
                        return -1;
                ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                return r;
        }
}

typedef struct fwd {
        cb_sandbox *sb;
        int fd;
        char method[32];
        char host[CB_DEST_HOST_MAX + 1];
        unsigned port;
        /* the leak guard's first sighting */
        bool leak;
        char leak_name[CB_NAME_MAX + 1];
        enum cb_scan_kind leak_kind;
        uint64_t leak_at, head_len;
        unsigned leaks;
} fwd;

static void record(fwd *f, const char *decision, const char *reason, unsigned status, uint64_t up, uint64_t down) {
        /* A head that carries a value: neither its method nor its host is
         * recorded (either may be the value: leak_refuse has made them ""
         * and "-"; the head is scanned before they are read). */
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:s}", "type", "egress", "time",
                              (json_int_t)time(NULL), "socket", "sandbox", "sandbox", f->sb->id, "uid",
                              (json_int_t)f->sb->uid, "client", f->sb->client, "method", f->method, "host", f->host,
                              "port", (json_int_t)f->port, "decision", decision, "status", (json_int_t)status, "route",
                              "forward");
        if (!o)
                return;
        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        if (f->leak) {
                json_t *l = json_pack("{s:s, s:s, s:s, s:I, s:s}", "secret", f->leak_name[0] ? f->leak_name : "",
                                      "kind", f->leak_name[0] ? "secret" : "token", "form",
                                      cb_scan_kind_name(f->leak_kind), "sightings", (json_int_t)f->leaks, "where",
                                      f->leak_at < f->head_len ? "head" : "body");
                if (l)
                        json_object_set_new(o, "leak", l);
        }
        if (up || down) {
                json_object_set_new(o, "bytes_up", json_integer((json_int_t)up));
                json_object_set_new(o, "bytes_down", json_integer((json_int_t)down));
        }
        cb_sandbox_audit(o);
        json_decref(o);
}

/* The answer is sent: stop writing, and read (and drop) what the tool
 * still sends for a moment, so that closing with unread bytes does not
 * reset the connection before the tool has read the answer.  Bounded: at
 * most LINGER_BYTES, LINGER_MS. */
#define LINGER_MS 1000
#define LINGER_BYTES (256 * 1024)
static void linger_close(int fd) {
        char buf[4096];
        size_t got = 0;
        uint64_t deadline = mono_ms() + LINGER_MS;

        (void)shutdown(fd, SHUT_WR);
        while (got < LINGER_BYTES) {
                ssize_t k = recv_by(fd, buf, sizeof(buf), deadline, -1);
                if (k <= 0)
                        break;
                got += (size_t)k;
        }
        sodium_memzero(buf, sizeof(buf));
}

/* Refuse before anything went upstream: a clear answer, a record, the
 * sandbox's alert -- a leak's alert of its own (F8); past the launching
 * user's budget of recorded refusals (shared with tools.sock and every
 * route of its sandboxes), 429 and no record of its own. */
static void refuse(fwd *f, unsigned status, const char *why) {
        char body[640], resp[1024];
        if (f->leak)
                cb_sandbox_note_leak(f->sb, "forward", status, why);
        if (status >= 400 && status < 500 && cb_sandbox_refusal_quiet(f->sb)) { /* as http/'s: 4xx */
                status = 429;
                why = "too many refusals of this user this minute: refused, and not recorded one by one";
        }
        int bl = snprintf(body, sizeof(body), "credbroker: %s to %.253s:%u refused: %s\n",
                          f->method[0] ? f->method : "request", f->host, f->port, why);
        const char *text = status == 403 ? "Forbidden" : status == 429 ? "Too Many Requests"
                         : status == 411 ? "Length Required" : status == 502 ? "Bad Gateway" : status == 413 ? "Content Too Large"
                         : status == 431 ? "Request Header Fields Too Large" : status == 503 ? "Service Unavailable"
                         : status == 504 ? "Gateway Timeout" : status == 405 ? "Method Not Allowed" : "Bad Request";
        if (bl < 0)
                bl = 0;
        if ((size_t)bl >= sizeof(body))
                bl = (int)sizeof(body) - 1;
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%.*s",
                          status, text, bl, bl, body);
        if (status != 429)
                record(f, "deny", why, status, 0, 0);
        if (!f->leak)
                cb_sandbox_note_refusal(f->sb, f->method[0] ? f->method : "?", "forward", status, why);
        if (rl > 0)
                (void)send_all(f->fd, resp, (size_t)rl < sizeof(resp) ? (size_t)rl : sizeof(resp) - 1, -1);
        linger_close(f->fd);
}

static int on_hit(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        fwd *f = ctx;
        (void)label;
        f->leaks++;
        if (!f->leak) {
                f->leak = true;
                snprintf(f->leak_name, sizeof(f->leak_name), "%s", hit->name ? hit->name : "");
                f->leak_kind = hit->kind;
                f->leak_at = hit->start;
        }
        return -ECANCELED; /* one is enough: the request is refused */
}

/* The leak guard's refusal: the secret's name and the form, where (head
 * or body); a head that carries it has neither its method nor its host
 * recorded or answered (either may be the value). */
static void leak_refuse(fwd *f, char *why, size_t cap) {
        bool in_head = f->leak_at < f->head_len;
        if (in_head) {
                f->method[0] = '\0';
                snprintf(f->host, sizeof(f->host), "-");
                f->port = 0;
        }
        if (f->leak_name[0])
                snprintf(why, cap, "the request's %s carries the live secret '%s' (%s form): the outbound leak guard "
                         "refuses plaintext requests holding a secret value", in_head ? "head" : "body", f->leak_name,
                         cb_scan_kind_name(f->leak_kind));
        else
                snprintf(why, cap, "the request's %s carries a credbroker token: the outbound leak guard refuses "
                         "plaintext requests holding one", in_head ? "head" : "body");
        refuse(f, 403, why);
}

/* Room for need bytes of body in *body (*held bytes now, charged to the
 * launching user): grown by doubling (to at most want when the length is
 * known, else CB_FWD_BODY_MAX), the growth charged first.  0, or -1 with
 * the request refused. */
static int held_room(fwd *f, unsigned char **body, size_t *held, size_t need, size_t want) {
        size_t cap = *held ? *held : IO_BUF, max = want ? want : CB_FWD_BODY_MAX;
        char why[200];

        if (need <= *held)
                return 0;
        if (need > CB_FWD_BODY_MAX) {
                snprintf(why, sizeof(why), "a body over %u bytes is not forwarded (it is held and scanned first)",
                         (unsigned)CB_FWD_BODY_MAX);
                refuse(f, 413, why);
                return -1;
        }
        while (cap < need)
                cap *= 2;
        if (cap > max)
                cap = max < need ? need : max;
        int r = cb_held_take(&held_budget, f->sb->acct, cap - *held);
        unsigned char *nb = r == 0 ? malloc(cap) : NULL;
        if (!nb) {
                if (r == 0)
                        cb_held_give(&held_budget, f->sb->acct, cap - *held);
                refuse(f, 503, r == -EDQUOT ? "too many request bodies of this user being checked at once (at most "
                                              "a quarter of the broker's budget); try again"
                                            : r < 0 ? "too many request bodies being checked at once; try again"
                                                    : "out of memory");
                return -1;
        }
        if (*body) {
                memcpy(nb, *body, *held);
                sodium_memzero(*body, *held);
                free(*body);
        }
        *body = nb;
        *held = cap;
        return 0;
}

static bool ci_eq(const char *s, size_t n, const char *lit) {
        return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* Does the tool's header go upstream?  The injection proxy's classes
 * (cb_preq_header_class, the same function): not the hop-by-hop and
 * framing ones (the broker frames the request), not the broker's own, not
 * Expect (the broker answered it), not the routing ones (Forwarded,
 * X-Forwarded-*, X-Real-IP, X-Original-*...: a gateway among the allowed
 * hosts must not be steered by them) nor the method and path overrides
 * (X-HTTP-Method-Override, X-Original-URL, Range...), which the proxy
 * drops too; Accept-Encoding does (nothing is redacted here), and so do
 * the tool's own credentials (Authorization: its, for that host). */
static bool goes_up(const cb_preq_header *x, const char *connection) {
        if (ci_eq(x->name, x->name_len, "accept-encoding"))
                return true;
        if (x->name_len >= 6 && strncasecmp(x->name, "proxy-", 6) == 0)
                return false;
        cb_preq_hclass k = cb_preq_header_class(x->name, x->name_len, NULL, connection);
        if (k == CB_HDR_HOP || k == CB_HDR_ROUTING || k == CB_HDR_OVERRIDE)
                return false;
        if (k == CB_HDR_CREDENTIAL && x->name_len >= 13 && strncasecmp(x->name, "x-credbroker-", 13) == 0)
                return false;
        return true;
}

/* Append to a bounded buffer; -1 when it would overflow. */
static int put(char *buf, size_t cap, size_t *n, const char *p, size_t k) {
        if (k > cap - *n)
                return -1;
        memcpy(buf + *n, p, k);
        *n += k;
        return 0;
}

/* Relay the upstream's response: its head checked and rewritten (hop-by-hop
 * fields out, Connection: close), then everything until it closes. */
static unsigned relay_response(fwd *f, int up, uint64_t *down, const char **why) {
        char *buf = malloc(IO_BUF), *out = malloc(CB_H1_HEAD_MAX + 64);
        size_t n = 0, hl = 0, on = 0;
        uint64_t deadline = mono_ms() + RESP_HEAD_TIMEOUT_MS;
        cb_h1_head *h = malloc(sizeof(*h));
        unsigned status = 0;
        const char *conn = NULL;
        size_t conn_len = 0;

        *why = "out of memory";
        if (!buf || !out || !h)
                goto out;
        *why = "no complete response head from the host (at most 32 KiB, within 120 s)";
        while (!(hl = cb_h1_head_end(buf, n)) && n < CB_H1_HEAD_MAX) {
                ssize_t k = recv_by(up, buf + n, (IO_BUF < CB_H1_HEAD_MAX ? IO_BUF : CB_H1_HEAD_MAX) - n, deadline, f->fd);
                if (k <= 0)
                        goto out;
                n += (size_t)k;
        }
        if (!hl)
                goto out;
        if (cb_h1_response(buf, hl, h) < 0) {
                *why = h->why;
                goto out;
        }
        status = h->status;
        for (size_t i = 0; i < h->nh; i++)
                if (ci_eq(h->h[i].name, h->h[i].name_len, "connection")) {
                        conn = h->h[i].value;
                        conn_len = h->h[i].value_len;
                }
        char cbuf[256] = "";
        if (conn)
                snprintf(cbuf, sizeof(cbuf), "%.*s", (int)(conn_len < 255 ? conn_len : 255), conn);
        (void)put(out, CB_H1_HEAD_MAX + 64, &on, buf, h->line_len);
        for (size_t i = 0; i < h->nh; i++) {
                const cb_preq_header *x = &h->h[i];
                cb_preq_hclass k = cb_preq_header_class(x->name, x->name_len, NULL, conn ? cbuf : NULL);
                if (k == CB_HDR_HOP && !ci_eq(x->name, x->name_len, "content-length") &&
                    !ci_eq(x->name, x->name_len, "transfer-encoding"))
                        continue; /* Connection, Keep-Alive, what Connection names... */
                (void)put(out, CB_H1_HEAD_MAX + 64, &on, x->name, (size_t)(x->value + x->value_len - x->name));
                (void)put(out, CB_H1_HEAD_MAX + 64, &on, "\r\n", 2);
        }
        (void)put(out, CB_H1_HEAD_MAX + 64, &on, "Connection: close\r\n\r\n", 21);
        *why = NULL;
        if (send_all(f->fd, out, on, -1) < 0 || (n > hl && send_all(f->fd, buf + hl, n - hl, -1) < 0))
                goto out;
        *down = on + (n - hl);
        for (;;) {
                ssize_t k = recv_by(up, buf, IO_BUF, mono_ms() + IDLE_TIMEOUT_MS, f->fd);
                if (k <= 0 || send_all(f->fd, buf, (size_t)k, -1) < 0)
                        break;
                *down += (uint64_t)k;
        }
out:
        free(buf);
        free(out);
        free(h);
        return status;
}

void cb_sandbox_forward(cb_sandbox *sb, int fd, size_t head_len) {
        fwd f = { .sb = sb, .fd = fd };
        char *head = malloc(CB_H1_HEAD_MAX + 1), why[400];
        cb_h1_head *h = malloc(sizeof(*h));
        cb_preq_head ph;
        cb_dest d;
        cb_matcher *m = NULL;
        cb_scan_stream *st = NULL;
        unsigned char *body = NULL, *tmp = NULL;
        size_t blen = 0, held = 0;
        char *up_head = NULL;
        size_t cap = CB_H1_HEAD_MAX + 512;
        int up = -1;

        snprintf(f.host, sizeof(f.host), "?");
        if (!head || !h) {
                refuse(&f, 503, "out of memory");
                goto out;
        }
        /* The head conn_main peeked at, consumed now. */
        size_t n = 0;
        uint64_t deadline = mono_ms() + STEP_TIMEOUT_MS;
        while (n < head_len) {
                ssize_t k = recv_by(fd, head + n, head_len - n, deadline, -1);
                if (k <= 0)
                        goto out;
                n += (size_t)k;
        }
        head[n] = '\0';
        /* The leak guard first, on the head as the tool sent it (request
         * line, every name and value): nothing of it is read, answered or
         * recorded before it passed -- a method or a host may be the value
         * (then neither is recorded), and a host goes to no resolver. */
        m = cb_sandbox_matcher();
        st = m ? cb_scan_stream_new(m, on_hit, NULL, &f) : NULL;
        if (!st) {
                refuse(&f, 503, "the outbound leak guard cannot run (no matcher): refused rather than unchecked");
                goto out;
        }
        f.head_len = n;
        (void)cb_scan_stream_feed(st, head, n);
        if (f.leak) {
                leak_refuse(&f, why, sizeof(why));
                goto out;
        }
        if (cb_h1_request(head, n, h) < 0) {
                refuse(&f, h->status, h->why);
                goto out;
        }
        snprintf(f.method, sizeof(f.method), "%s", h->method);
        /* The proxy's framing and target rules, to the letter. */
        if (cb_preq_decide(h->method, h->target, h->target_len, h->h, h->nh, &ph) < 0) {
                refuse(&f, ph.status, ph.why);
                goto out;
        }
        if (!ph.forward || ph.target_https) {
                refuse(&f, 400, "only http:// absolute-form requests are forwarded; HTTPS goes through CONNECT "
                                "(HTTPS_PROXY)");
                goto out;
        }
        if (cb_dest_parse_authority(ph.authority, false, &d) < 0) {
                refuse(&f, 400, "the target's host is not host[:port]");
                goto out;
        }
        snprintf(f.host, sizeof(f.host), "%s", d.host);
        f.port = d.port;
        if (d.literal) {
                refuse(&f, 403, "an IP literal: a sandbox may only name hosts its client's egress.allow lists");
                goto out;
        }
        if (!cb_sandbox_egress_allows(sb, f.host, f.port)) {
                snprintf(why, sizeof(why), "%.200s:%u is not in client '%s''s egress.allow", f.host, f.port, sb->client);
                refuse(&f, 403, why);
                goto out;
        }
        if (h->minor == 0 && ph.frame == CB_FRAME_NONE &&
            (strcmp(h->method, "POST") == 0 || strcmp(h->method, "PUT") == 0 || strcmp(h->method, "PATCH") == 0)) {
                /* Its body would run to the end of the connection: it is not
                 * dropped silently (sent on with Content-Length: 0), it is
                 * refused. */
                refuse(&f, 411, "an HTTP/1.0 request with a body needs a Content-Length");
                goto out;
        }
        if (ph.body_coded) {
                refuse(&f, 415, "a request Content-Encoding other than identity: a coded body cannot be checked for "
                                "secrets");
                goto out;
        }
        if (ph.frame == CB_FRAME_LENGTH && ph.length > CB_FWD_BODY_MAX) {
                snprintf(why, sizeof(why), "a body over %u bytes is not forwarded (it is held and scanned first)",
                         (unsigned)CB_FWD_BODY_MAX);
                refuse(&f, 413, why);
                goto out;
        }
        /* The leak guard goes on: the body through the same stream as the
         * head before anything goes upstream. */
        if (ph.frame != CB_FRAME_NONE) {
                /* Held as it arrives: the buffer grows and its growth is
                 * charged to the launching user (held_room). */
                if (held_room(&f, &body, &held, 1, ph.frame == CB_FRAME_LENGTH ? (size_t)ph.length : 0) < 0)
                        goto out;
                tmp = malloc(IO_BUF);
                if (!tmp) {
                        refuse(&f, 503, "out of memory");
                        goto out;
                }
                for (size_t i = 0; i < h->nh; i++)
                        if (ci_eq(h->h[i].name, h->h[i].name_len, "expect") &&
                            ci_eq(h->h[i].value, h->h[i].value_len, "100-continue")) {
                                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                                (void)send_all(fd, cont, sizeof(cont) - 1, -1);
                                break;
                        }
                cb_h1_chunked ch = { 0 };
                uint64_t bdeadline = mono_ms() + BODY_TIMEOUT_MS;
                for (;;) {
                        if (ph.frame == CB_FRAME_LENGTH && blen == ph.length)
                                break;
                        if (ph.frame == CB_FRAME_CHUNKED && ch.done)
                                break;
                        size_t want = ph.frame == CB_FRAME_LENGTH ? (size_t)ph.length - blen : IO_BUF;
                        if (want > IO_BUF)
                                want = IO_BUF;
                        uint64_t dl = mono_ms() + STEP_TIMEOUT_MS;
                        ssize_t k = recv_by(fd, tmp, want, dl < bdeadline ? dl : bdeadline, -1);
                        if (k <= 0) {
                                refuse(&f, 400, "the body ended early or did not arrive in time (10 s a piece, "
                                                "60 s in all)");
                                goto out;
                        }
                        if (ph.frame == CB_FRAME_LENGTH) {
                                if (held_room(&f, &body, &held, blen + (size_t)k, (size_t)ph.length) < 0)
                                        goto out;
                                memcpy(body + blen, tmp, (size_t)k);
                                (void)cb_scan_stream_feed(st, body + blen, (size_t)k);
                                blen += (size_t)k;
                                continue;
                        }
                        /* chunked: decoded in place into tmp, then kept */
                        size_t off = 0;
                        while (off < (size_t)k && !ch.done) {
                                size_t ol = 0, used = 0;
                                if (cb_h1_chunked_feed(&ch, (unsigned char *)tmp + off, (size_t)k - off,
                                                       (unsigned char *)tmp + off, &ol, &used) < 0) {
                                        snprintf(why, sizeof(why), "bad chunked framing: %s", ch.why);
                                        refuse(&f, 400, why);
                                        goto out;
                                }
                                if (ol > CB_FWD_BODY_MAX - blen) {
                                        snprintf(why, sizeof(why), "a body over %u bytes is not forwarded (it is "
                                                 "held and scanned first)", (unsigned)CB_FWD_BODY_MAX);
                                        refuse(&f, 413, why);
                                        goto out;
                                }
                                if (ol && held_room(&f, &body, &held, blen + ol, 0) < 0)
                                        goto out;
                                memcpy(body + blen, tmp + off, ol);
                                (void)cb_scan_stream_feed(st, body + blen, ol);
                                blen += ol;
                                off += used;
                        }
                }
        }
        (void)cb_scan_stream_finish(st);
        /* A body with line breaks once more without them: base64 wrapped
         * as MIME or PEM writes it (match_unwrap.h). */
        if (!f.leak && blen && cb_scan_has_breaks(body, blen)) {
                if (cb_scan_unwrapped(m, body, blen, on_hit, &f) == -ENOMEM) {
                        refuse(&f, 503, "out of memory");
                        goto out;
                }
                if (f.leak)
                        f.leak_at = f.head_len; /* in the body */
        }
        if (f.leak) {
                leak_refuse(&f, why, sizeof(why));
                goto out;
        }
        /* The address checked is the address dialled: one lookup
         * (non-blocking: send_all and recv_by poll). */
        int dstatus = 0;
        up = cb_sandbox_dial(f.host, f.port, &dstatus, why, sizeof(why));
        if (up < 0) {
                refuse(&f, dstatus, why);
                goto out;
        }
        /* The request as the broker frames it. */
        size_t hn = 0;
        const char *connection = NULL;
        char cbuf[256] = "", line[64];
        up_head = malloc(cap);
        if (!up_head) {
                refuse(&f, 503, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < h->nh; i++)
                if (ci_eq(h->h[i].name, h->h[i].name_len, "connection")) {
                        snprintf(cbuf, sizeof(cbuf), "%.*s", (int)(h->h[i].value_len < 255 ? h->h[i].value_len : 255),
                                 h->h[i].value);
                        connection = cbuf;
                }
        int bad = put(up_head, cap, &hn, h->method, strlen(h->method)) | put(up_head, cap, &hn, " ", 1);
        if (ph.path_len)
                bad |= put(up_head, cap, &hn, h->target + ph.path_off, ph.path_len);
        else
                bad |= put(up_head, cap, &hn, "/", 1);
        if (ph.has_query)
                bad |= put(up_head, cap, &hn, "?", 1) | put(up_head, cap, &hn, h->target + ph.query_off, ph.query_len);
        bad |= put(up_head, cap, &hn, " HTTP/1.1\r\nHost: ", 17) |
               put(up_head, cap, &hn, ph.authority, strlen(ph.authority)) | put(up_head, cap, &hn, "\r\n", 2);
        for (size_t i = 0; i < h->nh; i++) {
                const cb_preq_header *x = &h->h[i];
                if (!goes_up(x, connection))
                        continue;
                bad |= put(up_head, cap, &hn, x->name, x->name_len) | put(up_head, cap, &hn, ": ", 2) |
                       put(up_head, cap, &hn, x->value, x->value_len) | put(up_head, cap, &hn, "\r\n", 2);
        }
        if (ph.frame != CB_FRAME_NONE || strcmp(h->method, "POST") == 0 || strcmp(h->method, "PUT") == 0 ||
            strcmp(h->method, "PATCH") == 0) {
                int ll = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", blen);
                bad |= put(up_head, cap, &hn, line, (size_t)ll);
        }
        bad |= put(up_head, cap, &hn, "Connection: close\r\n\r\n", 21);
        if (bad) {
                refuse(&f, 431, "the request head is too large to forward");
                goto out;
        }
        record(&f, "allow", "forward", 0, 0, 0);
        uint64_t down = 0;
        const char *rwhy = NULL;
        unsigned status = 0;
        if (send_all(up, up_head, hn, fd) < 0 || (blen && send_all(up, body, blen, fd) < 0)) {
                rwhy = "the host stopped reading the request";
        } else {
                status = relay_response(&f, up, &down, &rwhy);
        }
        if (!status) {
                /* Nothing was relayed yet: the tool gets a 502 (not a refusal of policy). */
                char resp[512];
                int rl = snprintf(resp, sizeof(resp),
                                  "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                                  "Content-Length: %zu\r\n\r\ncredbroker: %s\n",
                                  strlen("credbroker: \n") + strlen(rwhy ? rwhy : "no response"),
                                  rwhy ? rwhy : "no response");
                if (rl > 0 && (size_t)rl < sizeof(resp))
                        (void)send_all(fd, resp, (size_t)rl, -1);
        }
        record(&f, "allow", rwhy ? rwhy : "forwarded", status ? status : 502, hn + blen, down);
        /* What the tool sent past the request (pipelined bytes, a body
         * after a GET) is drained a moment, so that closing does not reset
         * its connection before it has read the answer. */
        linger_close(fd);
out:
        if (up >= 0)
                close(up);
        cb_scan_stream_free(st);
        if (m)
                cb_matcher_free(m);
        if (body) {
                sodium_memzero(body, held);
                free(body);
        }
        if (tmp) {
                sodium_memzero(tmp, IO_BUF);
                free(tmp);
        }
        cb_held_give(&held_budget, sb->acct, held);
        if (up_head) {
                sodium_memzero(up_head, cap);
                free(up_head);
        }
        if (head) {
                sodium_memzero(head, CB_H1_HEAD_MAX + 1);
                free(head);
        }
        free(h);
}
