/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CONNECT tunnels out of a sandbox (sandbox_internal.h has the contract):
 * the target must be a name in the client's egress.allow (no IP literal),
 * the address it resolves to must pass the proxy's SSRF rules and is the
 * one dialled, and the TLS ClientHello's SNI must name the same host.
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

#include "egress.h"
#include "match.h"
#include "sandbox.h"
#include "sandbox_internal.h"
#include "sni.h"

#define HEAD_MAX 4096
#define STEP_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS (300 * 1000)
#define SPLICE_BUF (64 * 1024)

static uint64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void send_all(int fd, const void *p, size_t n) {
        const char *s = p;
        while (n) {
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                s += k;
                n -= (size_t)k;
        }
}

static void record(cb_sandbox *sb, const char *host, unsigned port, const char *decision, const char *reason,
                   unsigned status, uint64_t up, uint64_t down) {
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:I}", "type", "egress", "time",
                              (json_int_t)time(NULL), "socket", "sandbox", "sandbox", sb->id, "uid", (json_int_t)sb->uid,
                              "client", sb->client, "method", "CONNECT", "host", host, "port", (json_int_t)port,
                              "decision", decision, "status", (json_int_t)status);
        if (!o)
                return;
        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        if (up || down) {
                json_object_set_new(o, "bytes_up", json_integer((json_int_t)up));
                json_object_set_new(o, "bytes_down", json_integer((json_int_t)down));
        }
        cb_sandbox_audit(o);
        json_decref(o);
}

/* Refuse before the tunnel exists: a clear answer, a record, the alert;
 * past the launching user's budget of recorded refusals (shared with
 * tools.sock and every route of its sandboxes), 429 and no record. */
static void refuse(cb_sandbox *sb, int fd, unsigned status, const char *host, unsigned port, const char *why) {
        char body[512], resp[768];
        bool quiet = status >= 400 && status < 500 && cb_sandbox_refusal_quiet(sb); /* as http/'s: 4xx */
        if (quiet) {
                status = 429;
                why = "too many refusals of this user this minute: refused, and not recorded one by one";
        }
        int bl = snprintf(body, sizeof(body), "credbroker: egress to %.253s:%u refused: %s\n", host, port, why);
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                          status, status == 403 ? "Forbidden" : status == 502 ? "Bad Gateway" : status == 429 ?
                          "Too Many Requests" : "Bad Request", bl, body);
        if (!quiet)
                record(sb, host, port, "deny", why, status, 0, 0);
        cb_sandbox_note_refusal(sb, "CONNECT", "egress", status, why);
        if (rl > 0)
                send_all(fd, resp, (size_t)rl < sizeof(resp) ? (size_t)rl : sizeof(resp) - 1);
}


/* Does the CONNECT head carry a live secret value or a token?  Then it is
 * refused (403, as the forwarder's), recorded without its target (host
 * "-": the target may be the value) with the secret's name and the form,
 * and the sandbox's leak alert raised; true.  No matcher: refused too. */
static bool leak_check(cb_sandbox *sb, int fd, const char *head, size_t n) {
        cb_scan_first l;
        struct cb_matcher *m = cb_sandbox_matcher();
        int r = m ? cb_scan_first_in(m, head, n, &l) : -ENOMEM;
        char why[320];

        if (m)
                cb_matcher_free(m);
        if (r < 0) {
                refuse(sb, fd, 503, "-", 0, "the outbound leak guard cannot run (no matcher): refused rather than "
                                            "unchecked");
                return true;
        }
        if (r == 0)
                return false;
        if (l.name[0])
                snprintf(why, sizeof(why), "the CONNECT request carries the live secret '%s' (%s form): the outbound "
                         "leak guard refuses it before the name is looked up", l.name, cb_scan_kind_name(l.kind));
        else
                snprintf(why, sizeof(why), "the CONNECT request carries a credbroker token: the outbound leak guard "
                         "refuses it before the name is looked up");
        cb_sandbox_note_leak(sb, "egress", 403, why);
        bool quiet = cb_sandbox_refusal_quiet(sb);
        if (!quiet) {
                json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:{s:s, s:s, s:s}}",
                                      "type", "egress", "time", (json_int_t)time(NULL), "socket", "sandbox", "sandbox",
                                      sb->id, "uid", (json_int_t)sb->uid, "client", sb->client, "method", "CONNECT",
                                      "host", "-", "port", (json_int_t)0, "decision", "deny", "status", (json_int_t)403,
                                      "reason", why, "leak", "secret", l.name, "kind", l.name[0] ? "secret" : "token",
                                      "form", cb_scan_kind_name(l.kind));
                if (o) {
                        cb_sandbox_audit(o);
                        json_decref(o);
                }
        }
        char resp[640];
        int rl = snprintf(resp, sizeof(resp), "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                          "Content-Length: %zu\r\n\r\ncredbroker: egress refused: %s\n", quiet ? 429u : 403u,
                          quiet ? "Too Many Requests" : "Forbidden", strlen("credbroker: egress refused: \n") +
                          strlen(quiet ? "too many refusals" : why), quiet ? "too many refusals" : why);
        if (rl > 0 && (size_t)rl < sizeof(resp))
                send_all(fd, resp, (size_t)rl);
        return true;
}

/* Read until the end of the request head; 0, or -1 (refused/timed out). */
static int read_head(int fd, char *buf, size_t cap, size_t *ret_n) {
        uint64_t deadline = mono_ms() + STEP_TIMEOUT_MS;
        size_t n = 0;

        while (n < cap - 1) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                uint64_t now = mono_ms();
                if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
                        return -1;
                /* Byte by byte up to the blank line: nothing of what follows
                 * (the ClientHello) is consumed here. */
                ssize_t k = recv(fd, buf + n, 1, 0);
                if (k <= 0)
                        return -1;
                n++;
                buf[n] = '\0';
                if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) {
                        *ret_n = n;
                        return 0;
                }
        }
        return -1;
}

/* The one way a sandbox's egress reaches a host (tunnels and forwarded
 * requests): resolve once, the SSRF rules on the address, dial exactly
 * that address (10 s).  A non-blocking socket, or -1 with *status and why. */
int cb_sandbox_dial(const char *host, unsigned port, int *status, char *why, size_t why_len) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        char ps[8];
        int s = -1, e = 0;
        socklen_t el = sizeof(e);
        struct pollfd pf = { .events = POLLOUT };

        snprintf(ps, sizeof(ps), "%u", port);
        if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) {
                *status = 502;
                snprintf(why, why_len, "the name does not resolve");
                return -1;
        }
        const char *bad = cb_addr_refusal(ai->ai_addr);
        if (bad) {
                freeaddrinfo(ai);
                *status = 403;
                snprintf(why, why_len, "the name resolves to a %s address, which is never dialled", bad);
                return -1;
        }
        s = socket(ai->ai_addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s >= 0 && (connect(s, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)) {
                pf.fd = s;
                if (poll(&pf, 1, STEP_TIMEOUT_MS) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0) {
                        freeaddrinfo(ai);
                        return s;
                }
        }
        if (s >= 0)
                close(s);
        freeaddrinfo(ai);
        *status = 502;
        snprintf(why, why_len, "cannot connect to it");
        return -1;
}

/* Both ways until either side ends or nothing moves for IDLE_TIMEOUT_MS. */
static void splice_both(int a, int b, uint64_t *up, uint64_t *down) {
        char *buf = malloc(SPLICE_BUF);

        if (!buf)
                return;
        for (;;) {
                struct pollfd pf[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
                int k = poll(pf, 2, IDLE_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                bool done = false;
                for (int i = 0; i < 2 && !done; i++) {
                        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t n = recv(pf[i].fd, buf, SPLICE_BUF, 0);
                        if (n <= 0) {
                                done = true;
                                break;
                        }
                        send_all(i == 0 ? b : a, buf, (size_t)n);
                        *(i == 0 ? up : down) += (uint64_t)n;
                }
                if (done)
                        break;
        }
        free(buf);
}

void cb_sandbox_tunnel(cb_sandbox *sb, int fd) {
        char head[HEAD_MAX + 1], host[CB_DEST_HOST_MAX + 1] = "?", why[320];
        size_t n = 0;
        unsigned port = 0;
        cb_dest d;
        int up = -1;

        if (read_head(fd, head, sizeof(head), &n) < 0) {
                refuse(sb, fd, 400, host, port, "no complete CONNECT request head (at most 4 KiB, within 10 s)");
                return;
        }
        /* The outbound leak guard on the whole head (target and fields)
         * before anything is parsed, recorded or resolved: a target that
         * carries a value (hex(secret).wild.test) must not reach a DNS
         * query, nor the audit log. */
        if (leak_check(sb, fd, head, n))
                return;
        /* "CONNECT host:port HTTP/1.x\r\n" */
        char *target = head + 8, *sp = strchr(target, ' ');
        if (!sp || strncmp(sp, " HTTP/1.", 8) != 0 || (size_t)(sp - target) > CB_DEST_HOST_MAX + 8) {
                refuse(sb, fd, 400, host, port, "a malformed CONNECT request line");
                return;
        }
        *sp = '\0';
        if (cb_dest_parse_authority(target, true, &d) < 0) {
                refuse(sb, fd, 400, host, port, "the CONNECT target is not host:port");
                return;
        }
        snprintf(host, sizeof(host), "%s", d.host);
        port = d.port;
        if (d.literal) {
                refuse(sb, fd, 403, host, port, "an IP literal: a sandbox may only name hosts its client's egress.allow lists");
                return;
        }
        if (!cb_sandbox_egress_allows(sb, host, port)) {
                snprintf(why, sizeof(why), "%.200s:%u is not in client '%s''s egress.allow", host, port, sb->client);
                refuse(sb, fd, 403, host, port, why);
                return;
        }
        /* The address checked is the address dialled: one lookup. */
        int status = 0;
        up = cb_sandbox_dial(host, port, &status, why, sizeof(why));
        if (up < 0 || fcntl(up, F_SETFL, 0) < 0) {
                if (up >= 0) {
                        close(up);
                        up = -1;
                        status = 502;
                        snprintf(why, sizeof(why), "cannot connect to it");
                }
                refuse(sb, fd, status, host, port, why);
                return;
        }
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        send_all(fd, ok, sizeof(ok) - 1);
        /* The ClientHello must name the CONNECTed host. */
        unsigned char *hello = malloc(CB_SNI_INPUT_MAX);
        size_t hl = 0;
        char name[CB_SNI_NAME_MAX + 1];
        const char *swhy = "no ClientHello within 10 s";
        cb_sni_result sr = CB_SNI_MORE;
        uint64_t deadline = mono_ms() + STEP_TIMEOUT_MS;
        while (hello && sr == CB_SNI_MORE && hl < CB_SNI_INPUT_MAX) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                uint64_t now = mono_ms();
                if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
                        break;
                ssize_t k = recv(fd, hello + hl, CB_SNI_INPUT_MAX - hl, 0);
                if (k <= 0)
                        break;
                hl += (size_t)k;
                sr = cb_sni_parse(hello, hl, name, &swhy);
        }
        if (sr != CB_SNI_FOUND || strcasecmp(name, host) != 0) {
                if (sr == CB_SNI_FOUND)
                        snprintf(why, sizeof(why), "the TLS ClientHello names %.200s, not the CONNECTed host", name);
                else
                        snprintf(why, sizeof(why), "no usable server name in the TLS ClientHello: %s",
                                 sr == CB_SNI_MORE ? "incomplete" : swhy);
                record(sb, host, port, "deny", why, 200, 0, 0);
                cb_sandbox_note_refusal(sb, "CONNECT", "egress", 403, why);
                free(hello);
                close(up);
                return; /* the tunnel is closed before a byte reaches the host */
        }
        record(sb, host, port, "allow", "tunnel", 200, 0, 0);
        send_all(up, hello, hl);
        uint64_t bu = hl, bd = 0;
        free(hello);
        splice_both(fd, up, &bu, &bd);
        close(up);
        record(sb, host, port, "allow", "tunnel closed", 200, bu, bd);
}
