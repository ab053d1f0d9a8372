/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's decision on a raw request head (proxy_request.h): pure
 * functions over bytes.  The HTTP layer (libmicrohttpd 0.9.75) has already
 * split the head; what it accepts that RFC 9112 does not, and what the
 * upstream might read differently, is refused here — see
 * docs/hardening-proxy.md for the table of what MHD does with each case.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "egress.h"
#include "error.h"
#include "proxy_request.h"

static int refuse(cb_preq_head *o, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(cb_preq_head *o, unsigned status, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(o->why, sizeof(o->why), fmt, ap);
        va_end(ap);
        o->status = status;
        return -EINVAL;
}

static bool is_tchar(unsigned char c) {
        return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986: unreserved, sub-delims, ':' and '@' (pchar without '%'), '/'. */
static bool is_pchar_or_slash(unsigned char c) {
        return isalnum(c) || (c && strchr("-._~!$&'()*+,;=:@/", c));
}

/* Raw target bytes RFC 3986 allows in a path (or, query, a query). */
static const char *target_bytes_bad(const char *s, size_t n, bool query) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '%') {
                        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                                return "a bad %-escape";
                        i += 2;
                } else if (!is_pchar_or_slash(c) && !(query && c == '?')) {
                        return c >= 0x80 ? "a raw non-ASCII byte" : c <= 0x20 || c == 0x7f ? "a space or control byte"
                                                                                               : "a character RFC 3986 does not allow there";
                }
        }
        return NULL;
}

/* Header names compared case-folded, '-' and '_' alike (CGI, PHP and WSGI
 * map both to '_'): lit is lower case with '-'. */
static bool norm_eq(const char *name, size_t n, const char *lit) {
        size_t ll = strlen(lit);

        if (n != ll)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = (char)tolower((unsigned char)name[i]);
                if (c == '_')
                        c = '-';
                if (c != lit[i])
                        return false;
        }
        return true;
}

/* Two header names alike once case-folded with '-' and '_' the same. */
static bool norm_eq_name(const char *a, size_t n, const char *b) {
        if (strlen(b) != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char x = (char)tolower((unsigned char)a[i]), y = (char)tolower((unsigned char)b[i]);
                if ((x == '_' ? '-' : x) != (y == '_' ? '-' : y))
                        return false;
        }
        return true;
}

static bool norm_prefix(const char *name, size_t n, const char *lit) {
        size_t ll = strlen(lit);

        return n > ll && norm_eq(name, ll, lit);
}

static bool ci_eq(const char *name, size_t n, const char *lit) {
        return strlen(lit) == n && strncasecmp(name, lit, n) == 0;
}

static void trim(const char **s, size_t *n) {
        while (*n && (**s == ' ' || **s == '\t'))
                (*s)++, (*n)--;
        while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
                (*n)--;
}

/* Is name listed in the Connection header's comma-separated tokens? */
static bool connection_listed(const char *conn_hdr, const char *name, size_t nl) {
        for (const char *p = conn_hdr; p && *p;) {
                while (*p == ' ' || *p == ',' || *p == '\t')
                        p++;
                size_t tl = strcspn(p, ", \t");
                if (tl && tl == nl && strncasecmp(p, name, nl) == 0)
                        return true;
                p += tl;
        }
        return false;
}

cb_preq_hclass cb_preq_header_class(const char *name, size_t n, const char *inj_name, const char *connection) {
        static const char *const hop[] = { "connection", "keep-alive", "proxy-connection", "te", "trailer",
                                           "transfer-encoding", "upgrade", "content-length", "host", "expect",
                                           "http2-settings", "accept-encoding", NULL };
        static const char *const cred[] = { "authorization", "proxy-authorization", "proxy-authenticate", NULL };
        static const char *const over[] = { "x-http-method-override", "x-http-method", "x-method-override",
                                            "x-original-url", "x-rewrite-url", "x-original-method", "range",
                                            "if-range", NULL };
        static const char *const route[] = { "forwarded", "x-forwarded", "x-real-ip", "x-host", "x-http-host",
                                             "true-client-ip", "x-client-ip", "client-ip", "x-cluster-client-ip",
                                             "x-proxyuser-ip", "x-original-host", "x-forwarded-prefix", NULL };
        static const char *const route_prefix[] = { "x-forwarded-", "x-original-", "x-envoy-", NULL };

        for (size_t i = 0; hop[i]; i++)
                if (norm_eq(name, n, hop[i]))
                        return CB_HDR_HOP;
        if (connection_listed(connection, name, n))
                return CB_HDR_HOP;
        for (size_t i = 0; cred[i]; i++)
                if (norm_eq(name, n, cred[i]))
                        return CB_HDR_CREDENTIAL;
        if (norm_prefix(name, n, "x-credbroker-") || (inj_name && norm_eq_name(name, n, inj_name)))
                return CB_HDR_CREDENTIAL;
        for (size_t i = 0; over[i]; i++)
                if (norm_eq(name, n, over[i]))
                        return CB_HDR_OVERRIDE;
        for (size_t i = 0; route[i]; i++)
                if (norm_eq(name, n, route[i]))
                        return CB_HDR_ROUTING;
        for (size_t i = 0; route_prefix[i]; i++)
                if (norm_prefix(name, n, route_prefix[i]))
                        return CB_HDR_ROUTING;
        return CB_HDR_FORWARD;
}

static int hexval(unsigned char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool cb_preq_holds_token(const char *s, size_t n) {
        char dec[CB_TOKEN_LEN];

        for (size_t i = 0; i < n; i++) {
                /* Decode CB_TOKEN_LEN characters from i (escapes or not). */
                size_t k = 0, j = i;
                while (k < CB_TOKEN_LEN && j < n) {
                        if (s[j] == '%' && j + 2 < n && hexval((unsigned char)s[j + 1]) >= 0 &&
                            hexval((unsigned char)s[j + 2]) >= 0) {
                                dec[k++] = (char)(hexval((unsigned char)s[j + 1]) * 16 + hexval((unsigned char)s[j + 2]));
                                j += 3;
                        } else {
                                dec[k++] = s[j++];
                        }
                        if (k <= CB_TOKEN_PREFIX_LEN && dec[k - 1] != CB_TOKEN_PREFIX[k - 1])
                                break;
                }
                if (k == CB_TOKEN_LEN && cb_token_check(dec, CB_TOKEN_LEN) == 0)
                        return true;
        }
        return false;
}

/* ---- parameter names, normalised as PHP reads them -------------------------
 * percent-decoded, '+' as space, leading spaces dropped, ' ' and '.' as
 * '_' (PHP's mangling), '-' as '_' too, case-folded, cut at '[' (an array:
 * the same variable) or a NUL. */
static void pname_char(cb_pname *p, unsigned char c) {
        if (p->frozen)
                return;
        if (!p->started && c == ' ')
                return;
        p->started = true;
        if (c == '\0' || c == '[') {
                p->frozen = true;
                return;
        }
        if (c == ' ' || c == '.' || c == '-')
                c = '_';
        if (p->n < CB_PNAME_MAX + 1)
                p->s[p->n++] = (char)tolower(c);
}

void cb_pname_byte(cb_pname *p, unsigned char c) {
        if (p->pct) {
                if (hexval(c) >= 0) {
                        p->raw[p->pct - 1] = (char)c;
                        if (++p->pct == 3) {
                                pname_char(p, (unsigned char)(hexval((unsigned char)p->raw[0]) * 16 +
                                                              hexval((unsigned char)p->raw[1])));
                                p->pct = 0;
                        }
                        return;
                }
                /* Not an escape: kept literally (as PHP does). */
                pname_char(p, '%');
                if (p->pct == 2)
                        pname_char(p, (unsigned char)p->raw[0]);
                p->pct = 0;
        }
        if (c == '%') {
                p->pct = 1;
                return;
        }
        pname_char(p, c == '+' ? ' ' : c);
}

void cb_pname_flush(cb_pname *p) {
        if (p->pct) {
                pname_char(p, '%');
                if (p->pct == 2)
                        pname_char(p, (unsigned char)p->raw[0]);
                p->pct = 0;
        }
}

bool cb_pname_override(const cb_pname *p) {
        static const char *const over[] = { "_method", "x_http_method_override", "x_http_method", "x_method_override",
                                            NULL };
        for (size_t i = 0; over[i]; i++)
                if (p->n == strlen(over[i]) && memcmp(p->s, over[i], p->n) == 0)
                        return true;
        return false;
}

static void pname_of(cb_pname *p, const char *raw, size_t n) {
        memset(p, 0, sizeof(*p));
        for (size_t i = 0; i < n; i++)
                cb_pname_byte(p, (unsigned char)raw[i]);
        cb_pname_flush(p);
}

/* Does raw name a method override (overrides) or the parameter also? */
static bool param_is(const char *raw, size_t n, const char *also, bool overrides) {
        cb_pname p, q;

        pname_of(&p, raw, n);
        if (overrides && cb_pname_override(&p))
                return true;
        if (!also || !*also)
                return false;
        pname_of(&q, also, strlen(also));
        return q.n == p.n && memcmp(q.s, p.s, p.n) == 0;
}

bool cb_preq_param_is(const char *raw, size_t n, const char *also) {
        return param_is(raw, n, also, true);
}

int cb_preq_query_filter(const char *q, size_t n, const char *drop, bool drop_overrides, char **ret) {
        char *out = malloc(n + 1);
        size_t o = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i <= n;) {
                size_t e = i;
                while (e < n && q[e] != '&' && q[e] != ';')
                        e++;
                const char *eq = memchr(q + i, '=', e - i);
                size_t kl = eq ? (size_t)(eq - (q + i)) : e - i;
                bool gone = e > i && param_is(q + i, kl, drop, drop_overrides);
                if (!gone && e > i) {
                        if (o)
                                out[o++] = i > 0 ? q[i - 1] : '&';
                        memcpy(out + o, q + i, e - i);
                        o += e - i;
                }
                i = e + 1;
        }
        out[o] = '\0';
        *ret = out;
        return 0;
}

/* ---- the head ---------------------------------------------------------------- */

/* Content-Type: which body kind, and a multipart boundary.  Refuses the
 * ambiguous: "boundary" named twice anywhere (PHP takes the first
 * "boundary=" substring, even inside another parameter's name). */
static bool contains_ci(const char *v, size_t n, const char *lit) {
        size_t ll = strlen(lit);

        for (size_t i = 0; i + ll <= n; i++)
                if (strncasecmp(v + i, lit, ll) == 0)
                        return true;
        return false;
}

/* Content-Type: which body kind (read generously: PHP cuts the media type
 * at ',', ';' or a space, Rack at ',' or ';', so any value naming a form
 * or multipart type counts as one), and a multipart boundary. */
static void content_type(const char *v, size_t n, cb_preq_head *o) {
        if (!contains_ci(v, n, "multipart")) {
                if (contains_ci(v, n, "x-www-form-urlencoded"))
                        o->body = CB_BODY_FORM;
                else if (contains_ci(v, n, "json"))
                        o->body = CB_BODY_JSON;
                return;
        }
        size_t ml = 0;
        while (ml < n && v[ml] != ';')
                ml++;
        o->body = CB_BODY_MULTIPART_BAD;
        size_t seen = 0;
        const char *at = NULL;
        for (size_t i = 0; i + 8 <= n; i++)
                if (strncasecmp(v + i, "boundary", 8) == 0)
                        seen++, at = v + i;
        if (seen != 1 || at < v + ml || (at[-1] != ';' && at[-1] != ' ' && at[-1] != '\t') || at + 8 >= v + n ||
            at[8] != '=')
                return;
        const char *b = at + 9, *end = v + n;
        size_t bl;
        if (b < end && *b == '"') {
                const char *q = memchr(b + 1, '"', (size_t)(end - b - 1));
                if (!q)
                        return;
                bl = (size_t)(q - b - 1);
                b++;
        } else {
                bl = 0;
                while (b + bl < end && b[bl] != ';' && b[bl] != ',' && b[bl] != ' ' && b[bl] != '\t')
                        bl++;
        }
        if (bl == 0 || bl > CB_PREQ_BOUNDARY_MAX)
                return;
        for (size_t i = 0; i < bl; i++)
                if ((unsigned char)b[i] < 0x20 || (unsigned char)b[i] >= 0x7f || b[i] == '"')
                        return;
        memcpy(o->boundary, b, bl);
        o->boundary[bl] = '\0';
        o->body = CB_BODY_MULTIPART;
}

/* Content-Length: 1*DIGIT (leading zeros allowed, RFC 9110 §8.6), no sign,
 * space or list; at most 18 digits (no overflow). */
static bool length_ok(const char *v, size_t n, uint64_t *ret) {
        uint64_t x = 0;

        if (n == 0 || n > 18)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return false;
                x = x * 10 + (uint64_t)(v[i] - '0');
        }
        *ret = x;
        return true;
}

static int decide_target(const char *t, size_t n, cb_preq_head *o) {
        size_t i;

        if (n >= 10 && memcmp(t, "/v1/proxy/", 10) == 0) {
                i = 10;
                size_t s = i;
                while (i < n && t[i] != '/' && t[i] != '?')
                        i++;
                if (i == s || i - s > CB_NAME_MAX)
                        return refuse(o, 400, "want /v1/proxy/<secret>/<path>");
                memcpy(o->secret, t + s, i - s);
                o->secret[i - s] = '\0';
                if (cb_name_check(o->secret) < 0)
                        return refuse(o, 400, "want /v1/proxy/<secret>/<path>: not a secret name");
        } else if ((n >= 7 && strncasecmp(t, "http://", 7) == 0) || (n >= 8 && strncasecmp(t, "https://", 8) == 0)) {
                o->forward = true;
                o->target_https = t[4] == 's' || t[4] == 'S';
                i = o->target_https ? 8 : 7;
                size_t s = i;
                while (i < n && t[i] != '/' && t[i] != '?')
                        i++;
                if (i == s || i - s >= sizeof(o->authority))
                        return refuse(o, 400, "bad target host");
                for (size_t k = s; k < i; k++)
                        if (!isalnum((unsigned char)t[k]) && !strchr("-.:[]", t[k]))
                                return refuse(o, 400, "bad target host");
                memcpy(o->authority, t + s, i - s);
                o->authority[i - s] = '\0';
        } else {
                return refuse(o, 400, "not a proxy target: want /v1/proxy/<secret>/<path> or http://host/path");
        }
        o->path_off = i;
        while (i < n && t[i] != '?')
                i++;
        o->path_len = i - o->path_off;
        if (i < n) {
                o->has_query = true;
                o->query_off = i + 1;
                o->query_len = n - i - 1;
        }
        const char *bad = target_bytes_bad(t + o->path_off, o->path_len, false);
        if (!bad && o->has_query)
                bad = target_bytes_bad(t + o->query_off, o->query_len, true);
        if (bad)
                return refuse(o, 400, "the request target holds %s (RFC 3986: escape it as %%XX)", bad);
        if (o->path_len && cb_path_check(t + o->path_off, o->path_len) < 0)
                return refuse(o, 400, "%s", cb_error_last());
        return 0;
}

int cb_preq_decide(const char *method, const char *target, size_t target_len, const cb_preq_header *h, size_t nh,
                   cb_preq_head *o) {
        size_t ncl = 0, nte = 0, nhost = 0, nct = 0, total = 0, ml = method ? strlen(method) : 0;
        const cb_preq_header *cl = NULL, *te = NULL, *ct = NULL;

        memset(o, 0, sizeof(*o));
        if (ml == 0 || ml >= 32)
                return refuse(o, 400, "bad method");
        for (size_t i = 0; i < ml; i++)
                if (!is_tchar((unsigned char)method[i]))
                        return refuse(o, 400, "bad method");
        if (strcmp(method, "CONNECT") == 0)
                return refuse(o, 405, "CONNECT tunnels are not offered: send absolute-form requests (HTTP_PROXY) or "
                                      "use /v1/proxy/<secret>/<path>");
        if (!target || target_len == 0 || target_len > CB_PREQ_TARGET_MAX)
                return refuse(o, 400, "request target empty or over %d bytes", CB_PREQ_TARGET_MAX);
        if (nh > CB_PREQ_HEADERS_MAX)
                return refuse(o, 431, "more than %d header fields", CB_PREQ_HEADERS_MAX);
        for (size_t i = 0; i < nh; i++) {
                const cb_preq_header *x = &h[i];
                total += x->name_len + x->value_len + 4;
                if (total > CB_PREQ_HEAD_BYTES)
                        return refuse(o, 431, "request headers over %d bytes", CB_PREQ_HEAD_BYTES);
                if (x->folded)
                        return refuse(o, 400, "a header is continued on the next line (obs-fold, RFC 9112 §5.2)");
                if (x->name_len == 0)
                        return refuse(o, 400, "a header with an empty name");
                for (size_t k = 0; k < x->name_len; k++)
                        if (!is_tchar((unsigned char)x->name[k]))
                                return refuse(o, 400, "header name '%.*s' holds a character outside RFC 9110's token",
                                              (int)(x->name_len > 64 ? 64 : x->name_len), x->name);
                for (size_t k = 0; k < x->value_len; k++) {
                        unsigned char c = (unsigned char)x->value[k];
                        if ((c < 0x20 && c != '\t') || c == 0x7f)
                                return refuse(o, 400, "header '%.*s' holds a control byte (CR, LF, NUL...)",
                                              (int)(x->name_len > 64 ? 64 : x->name_len), x->name);
                }
                if (ci_eq(x->name, x->name_len, "content-length"))
                        ncl++, cl = x;
                else if (ci_eq(x->name, x->name_len, "transfer-encoding"))
                        nte++, te = x;
                else if (ci_eq(x->name, x->name_len, "host"))
                        nhost++;
                else if (ci_eq(x->name, x->name_len, "content-type"))
                        nct++, ct = x;
                else if (ci_eq(x->name, x->name_len, "content-encoding")) {
                        const char *v = x->value;
                        size_t vl = x->value_len;
                        trim(&v, &vl);
                        if (!ci_eq(v, vl, "identity"))
                                o->body_coded = true;
                }
        }
        /* Framing (RFC 9112 §6.1-6.3): the broker's, so nothing ambiguous. */
        if (ncl && nte)
                return refuse(o, 400, "both Content-Length and Transfer-Encoding: refused (RFC 9112 §6.1)");
        if (nte > 1)
                return refuse(o, 400, "Transfer-Encoding given more than once");
        if (te && !(te->value_len == 7 && memcmp(te->value, "chunked", 7) == 0))
                return refuse(o, 400, "Transfer-Encoding other than exactly 'chunked': refused");
        if (ncl > 1)
                return refuse(o, 400, "Content-Length given more than once");
        if (cl && !length_ok(cl->value, cl->value_len, &o->length))
                return refuse(o, 400, "Content-Length is not a plain decimal number");
        o->frame = te ? CB_FRAME_CHUNKED : cl && o->length > 0 ? CB_FRAME_LENGTH : CB_FRAME_NONE;
        if (nhost > 1)
                return refuse(o, 400, "Host given more than once");
        if (nct > 1)
                return refuse(o, 400, "Content-Type given more than once");
        if (ct)
                content_type(ct->value, ct->value_len, o);
        else
                o->body = CB_BODY_FORM;       /* Rack reads a POST without a type as a form */
        return decide_target(target, target_len, o);
}
