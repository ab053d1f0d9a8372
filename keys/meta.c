/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "meta.h"

/* Field tags, in the order they must appear. */
enum {
        TAG_INJECT = 1,
        TAG_HOSTS = 2,
        TAG_METHODS = 3,
        TAG_PREFIXES = 4,
        TAG_NOT_AFTER = 5,
        TAG_LABELS = 6,
        TAG_CA_FILE = 7,
        TAG_PIN = 8,
};

void cb_strv_clear(cb_strv *v) {
        for (size_t i = 0; i < v->n; i++)
                free(v->v[i]);
        free(v->v);
        v->v = NULL;
        v->n = 0;
}

int cb_strv_push(cb_strv *v, const char *s, size_t max) {
        char **nv, *c;

        if (v->n >= max)
                return -E2BIG;
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        nv = realloc(v->v, (v->n + 1) * sizeof(*nv));
        if (!nv) {
                free(c);
                return -ENOMEM;
        }
        nv[v->n++] = c;
        v->v = nv;
        return 0;
}

void cb_meta_clear(cb_meta *m) {
        free(m->inject);
        cb_strv_clear(&m->hosts);
        cb_strv_clear(&m->methods);
        cb_strv_clear(&m->path_prefixes);
        cb_strv_clear(&m->labels);
        free(m->ca_file);
        free(m->pin);
        memset(m, 0, sizeof(*m));
}

void cb_meta_free(cb_meta *m) {
        if (!m)
                return;
        cb_meta_clear(m);
        free(m);
}

static int strv_copy(const cb_strv *src, cb_strv *dst) {
        for (size_t i = 0; i < src->n; i++) {
                int r = cb_strv_push(dst, src->v[i], SIZE_MAX);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cb_meta_copy(const cb_meta *src, cb_meta **ret) {
        cb_meta *m = calloc(1, sizeof(*m));
        int r = -ENOMEM;

        if (!m)
                return -ENOMEM;
        if ((src->inject && !(m->inject = strdup(src->inject))) ||
            (src->ca_file && !(m->ca_file = strdup(src->ca_file))) || (src->pin && !(m->pin = strdup(src->pin))))
                goto out;
        if ((r = strv_copy(&src->hosts, &m->hosts)) < 0 ||
            (r = strv_copy(&src->methods, &m->methods)) < 0 ||
            (r = strv_copy(&src->path_prefixes, &m->path_prefixes)) < 0 ||
            (r = strv_copy(&src->labels, &m->labels)) < 0)
                goto out;
        m->not_after = src->not_after;
        *ret = m;
        return 0;
out:
        cb_meta_free(m);
        return r;
}

static bool is_printable(const char *s) {
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
                        return false;
        return true;
}

/* DNS name: labels of [a-z0-9-], not starting/ending with '-', 1..63 each,
 * total <= 253.  Accepts IPv4 literals too (digits and dots). */
static bool valid_dns_name(const char *s, size_t n) {
        size_t label = 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-'))
                        return false;
                if (c == '-' && label == 0)
                        return false;
                if (++label > 63)
                        return false;
        }
        return label > 0 && s[n - 1] != '-';
}

static bool valid_ipv6_literal(const char *s, size_t n) {
        if (n < 2 || n > 41)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(isxdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'))
                        return false;
        return true;
}

/* Host entry: [http://]name[:port] or [http://][v6]:port, lower-cased in
 * place.  Validation is syntactic; resolution rules are the proxy's. */
static int check_host(char *h) {
        char *p = h, *end, *colon;
        size_t n;

        for (char *q = h; *q; q++)
                *q = (char)tolower((unsigned char)*q);
        if (strncmp(p, "http://", 7) == 0)
                p += 7;
        else if (strstr(p, "://"))
                return cb_error_set(-EINVAL, "host '%s': only 'http://' may be written as a scheme "
                                    "(HTTPS is the default)", h);
        if (*p == '[') {
                end = strchr(p, ']');
                if (!end || !valid_ipv6_literal(p + 1, (size_t)(end - p - 1)))
                        return cb_error_set(-EINVAL, "host '%s': malformed IPv6 literal", h);
                colon = end[1] == ':' ? end + 1 : NULL;
                if (end[1] && !colon)
                        return cb_error_set(-EINVAL, "host '%s': junk after IPv6 literal", h);
        } else {
                colon = strchr(p, ':');
                n = colon ? (size_t)(colon - p) : strlen(p);
                if (!valid_dns_name(p, n))
                        return cb_error_set(-EINVAL, "host '%s': not a valid host name", h);
        }
        if (colon) {
                char *e;
                unsigned long port;

                errno = 0;
                port = strtoul(colon + 1, &e, 10);
                if (errno || *e || colon[1] == '\0' || !isdigit((unsigned char)colon[1]) || port == 0 ||
                    port > 65535)
                        return cb_error_set(-EINVAL, "host '%s': bad port", h);
        }
        return 0;
}

/* Headers a template may not name (compared case-folded, '-' and '_'
 * alike, as CGI, PHP and WSGI read them): framing and hop-by-hop headers,
 * Host, the proxy's own and its credentials' headers, routing and method
 * overrides.  The proxy owns or drops each of them; a credential there
 * would fail at use, or change where a request goes.  Checked here so every
 * way a secret enters a store (put, import of a sealed blob, seal) is
 * covered. */
static const char *template_header_reserved(const char *name, size_t n) {
        static const char *const exact[] = { "host", "content-length", "transfer-encoding", "connection", "keep-alive",
                                             "proxy-connection", "te", "trailer", "upgrade", "expect",
                                             "proxy-authorization", "proxy-authenticate", "http2-settings",
                                             "forwarded", "x-forwarded", "x-real-ip", "x-http-method-override",
                                             "x-http-method", "x-method-override", "x-rewrite-url", "content-encoding",
                                             "accept-encoding", NULL };
        static const char *const prefix[] = { "x-forwarded-", "x-original-", "x-envoy-", "x-credbroker-", NULL };
        char low[128];

        if (n >= sizeof(low))
                return NULL;
        for (size_t i = 0; i < n; i++)
                low[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
        low[n] = '\0';
        for (size_t i = 0; exact[i]; i++)
                if (strcmp(low, exact[i]) == 0)
                        return "a framing, hop-by-hop, Host, proxy, routing or override header";
        for (size_t i = 0; prefix[i]; i++)
                if (strncmp(low, prefix[i], strlen(prefix[i])) == 0)
                        return "a routing header or the broker's own";
        return NULL;
}

static int check_template(const char *t) {
        const char *colon;

        if (!is_printable(t))
                return cb_error_set(-EINVAL, "inject template: control or non-ASCII character");
        if (strncmp(t, "basic:", 6) == 0) {
                if (t[6] == '\0' || strchr(t + 6, ':'))
                        return cb_error_set(-EINVAL, "inject template 'basic:USER': user missing or contains ':'");
                return 0;
        }
        if (strncmp(t, "query:", 6) == 0) {
                for (const char *q = t + 6; *q; q++)
                        if (!(isalnum((unsigned char)*q) || strchr("-_.~", *q)))
                                return cb_error_set(-EINVAL, "inject template 'query:PARAM': bad parameter name");
                return t[6] ? 0 : cb_error_set(-EINVAL, "inject template 'query:PARAM': parameter missing");
        }
        colon = strchr(t, ':');
        if (!colon || colon == t)
                return cb_error_set(-EINVAL, "inject template must be 'Header-Name: text {} text', "
                                    "'basic:USER' or 'query:PARAM'");
        for (const char *q = t; q < colon; q++)
                if (!(isalnum((unsigned char)*q) || strchr("!#$%&'*+-.^_`|~", *q)))
                        return cb_error_set(-EINVAL, "inject template: bad header name");
        {
                const char *why = template_header_reserved(t, (size_t)(colon - t));
                if (why)
                        return cb_error_set(-EINVAL, "inject template: header '%.*s' is %s: the proxy never sends a "
                                            "credential there", (int)(colon - t), t, why);
        }
        {
                const char *first = strstr(colon, "{}");
                if (!first || strstr(first + 2, "{}"))
                        return cb_error_set(-EINVAL, "inject template: the value must contain '{}' exactly once");
        }
        return 0;
}

/* No C0 control character and no DEL; bytes >= 0x80 pass (paths may be
 * UTF-8). */
static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static int check_ca_file(const char *s) {
        if (s[0] != '/')
                return cb_error_set(-EINVAL, "ca_file: must be an absolute path");
        if (strlen(s) > CB_META_MAX_CA_FILE)
                return cb_error_set(-EINVAL, "ca_file: longer than %d bytes", CB_META_MAX_CA_FILE);
        if (has_control(s))
                return cb_error_set(-EINVAL, "ca_file: control character in the path");
        return 0;
}

static bool is_base64_char(char c) {
        return isalnum((unsigned char)c) || c == '+' || c == '/';
}

/* One "sha256//" + the canonical standard base64 of 32 bytes: 42 free
 * characters, a 43rd that carries 4 bits and 2 zero bits, and one '='. */
static bool valid_pin_entry(const char *s, size_t n) {
        static const char last[] = "AEIMQUYcgkosw048";

        if (n != CB_META_PIN_ENTRY || strncmp(s, "sha256//", 8) != 0)
                return false;
        s += 8;
        for (size_t i = 0; i < 42; i++)
                if (!is_base64_char(s[i]))
                        return false;
        return s[42] && strchr(last, s[42]) && s[43] == '=';
}

/* Entries of fixed length, at most CB_META_MAX_PINS: within CB_META_MAX_PIN
 * bytes by construction. */
static int check_pin(const char *s) {
        size_t entries = 0;

        for (;;) {
                const char *semi = strchr(s, ';');
                size_t n = semi ? (size_t)(semi - s) : strlen(s);

                if (++entries > CB_META_MAX_PINS)
                        return cb_error_set(-EINVAL, "pin: more than %d entries", CB_META_MAX_PINS);
                if (!valid_pin_entry(s, n))
                        return cb_error_set(-EINVAL, "pin: entry %zu must be 'sha256//' followed by the "
                                            "base64 of a 32-byte SHA-256 (44 characters, ending in '=')", entries);
                if (!semi)
                        return 0;
                s = semi + 1;
        }
}

int cb_meta_validate(cb_meta *m) {
        int r;

        if (m->inject) {
                if (strlen(m->inject) > CB_META_MAX_TEMPLATE)
                        return cb_error_set(-EINVAL, "inject template longer than %d bytes", CB_META_MAX_TEMPLATE);
                if ((r = check_template(m->inject)) < 0)
                        return r;
        }
        if (m->hosts.n > CB_META_MAX_HOSTS)
                return cb_error_set(-EINVAL, "more than %d hosts", CB_META_MAX_HOSTS);
        for (size_t i = 0; i < m->hosts.n; i++) {
                if (strlen(m->hosts.v[i]) > CB_META_MAX_HOST)
                        return cb_error_set(-EINVAL, "host entry %zu too long", i + 1);
                if ((r = check_host(m->hosts.v[i])) < 0)
                        return r;
        }
        if (m->methods.n > CB_META_MAX_METHODS)
                return cb_error_set(-EINVAL, "more than %d methods", CB_META_MAX_METHODS);
        for (size_t i = 0; i < m->methods.n; i++) {
                const char *s = m->methods.v[i];
                size_t n = strlen(s);

                if (n == 0 || n > CB_META_MAX_METHOD)
                        return cb_error_set(-EINVAL, "method %zu: empty or too long", i + 1);
                for (size_t j = 0; j < n; j++)
                        if (!isupper((unsigned char)s[j]))
                                return cb_error_set(-EINVAL, "method '%s': must be upper-case letters", s);
        }
        if (m->path_prefixes.n > CB_META_MAX_PREFIXES)
                return cb_error_set(-EINVAL, "more than %d path prefixes", CB_META_MAX_PREFIXES);
        for (size_t i = 0; i < m->path_prefixes.n; i++) {
                const char *s = m->path_prefixes.v[i];

                if (s[0] != '/' || strlen(s) > CB_META_MAX_PREFIX || !is_printable(s) || strchr(s, ' ') ||
                    strstr(s, "/../") || strstr(s, "%"))
                        return cb_error_set(-EINVAL, "path prefix %zu: must start with '/', be printable "
                                            "ASCII without spaces, '%%' or '/../'", i + 1);
        }
        if (m->labels.n > CB_META_MAX_LABELS)
                return cb_error_set(-EINVAL, "more than %d labels", CB_META_MAX_LABELS);
        for (size_t i = 0; i < m->labels.n; i++) {
                const char *s = m->labels.v[i], *eq = strchr(s, '=');

                if (!eq || eq == s || strlen(s) > CB_META_MAX_LABEL || !is_printable(s))
                        return cb_error_set(-EINVAL, "label %zu: must be key=value, printable, at most %d bytes",
                                            i + 1, CB_META_MAX_LABEL);
        }
        if (m->ca_file && (r = check_ca_file(m->ca_file)) < 0)
                return r;
        if (m->pin && (r = check_pin(m->pin)) < 0)
                return r;
        return 0;
}

static int put_string(cb_buf *out, uint8_t tag, const char *s) {
        int r;

        if (!s)
                return 0;
        if ((r = cb_buf_put_u8(out, tag)) < 0)
                return r;
        return cb_buf_put_lv(out, s, strlen(s));
}

static int put_strv(cb_buf *out, uint8_t tag, const cb_strv *v) {
        cb_buf inner = CB_BUF_INIT;
        int r = 0;

        if (v->n == 0)
                return 0;
        for (size_t i = 0; i < v->n && r >= 0; i++)
                r = cb_buf_put_lv(&inner, v->v[i], strlen(v->v[i]));
        if (r >= 0)
                r = cb_buf_put_u8(out, tag);
        if (r >= 0)
                r = cb_buf_put_lv(out, inner.data, inner.len);
        cb_buf_free(&inner);
        return r;
}

int cb_meta_encode(const cb_meta *m, cb_buf *out) {
        size_t start = out->len;
        int r = 0;

        if (m->inject) {
                if ((r = cb_buf_put_u8(out, TAG_INJECT)) < 0 ||
                    (r = cb_buf_put_lv(out, m->inject, strlen(m->inject))) < 0)
                        return r;
        }
        if ((r = put_strv(out, TAG_HOSTS, &m->hosts)) < 0 || (r = put_strv(out, TAG_METHODS, &m->methods)) < 0 ||
            (r = put_strv(out, TAG_PREFIXES, &m->path_prefixes)) < 0)
                return r;
        if (m->not_after) {
                if ((r = cb_buf_put_u8(out, TAG_NOT_AFTER)) < 0 || (r = cb_buf_put_u32(out, 8)) < 0 ||
                    (r = cb_buf_put_u64(out, m->not_after)) < 0)
                        return r;
        }
        if ((r = put_strv(out, TAG_LABELS, &m->labels)) < 0 || (r = put_string(out, TAG_CA_FILE, m->ca_file)) < 0 ||
            (r = put_string(out, TAG_PIN, m->pin)) < 0)
                return r;
        if (out->len - start > CB_META_MAX_ENCODED)
                return cb_error_set(-E2BIG, "metadata larger than %d bytes", CB_META_MAX_ENCODED);
        return 0;
}

static int get_strv(const unsigned char *p, size_t n, size_t max_items, size_t max_len, cb_strv *v) {
        cb_reader r = cb_reader_make(p, n);

        if (n == 0)
                return -EBADMSG; /* empty lists are omitted, never encoded */
        while (cb_reader_left(&r) > 0) {
                char *s;
                int k;

                if (v->n >= max_items)
                        return -EBADMSG;
                k = cb_reader_text(&r, max_len, &s);
                if (k < 0)
                        return k;
                char **nv = realloc(v->v, (v->n + 1) * sizeof(*nv));
                if (!nv) {
                        free(s);
                        return -ENOMEM;
                }
                v->v = nv;
                v->v[v->n++] = s;
        }
        return 0;
}

/* A single-string field: non-empty (absence is not encoded), at most max
 * bytes, no control character.  Syntax beyond that is cb_meta_validate's. */
static int get_string(const unsigned char *p, size_t n, size_t max, char **ret) {
        char *s;

        if (n == 0 || n > max)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] == 0x7f)
                        return -EBADMSG;
        s = strndup((const char *)p, n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int cb_meta_decode(const unsigned char *p, size_t len, cb_meta **ret) {
        cb_reader rd = cb_reader_make(p, len);
        cb_meta *m;
        int last = 0, r = -EBADMSG;

        if (len > CB_META_MAX_ENCODED)
                return -EBADMSG;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        while (cb_reader_left(&rd) > 0) {
                const unsigned char *f;
                size_t fl;
                uint8_t tag;

                if (cb_reader_u8(&rd, &tag) < 0 || tag <= last ||
                    cb_reader_lv(&rd, CB_META_MAX_ENCODED, &f, &fl) < 0)
                        goto fail;
                last = tag;
                switch (tag) {
                case TAG_INJECT:
                        r = -EBADMSG;
                        if (fl > CB_META_MAX_TEMPLATE)
                                break;
                        for (size_t i = 0; i < fl; i++)
                                if (f[i] < 0x20 || f[i] == 0x7f)
                                        goto fail;
                        m->inject = strndup((const char *)f, fl);
                        r = m->inject ? 0 : -ENOMEM;
                        break;
                case TAG_HOSTS:
                        r = get_strv(f, fl, CB_META_MAX_HOSTS, CB_META_MAX_HOST, &m->hosts);
                        break;
                case TAG_METHODS:
                        r = get_strv(f, fl, CB_META_MAX_METHODS, CB_META_MAX_METHOD, &m->methods);
                        break;
                case TAG_PREFIXES:
                        r = get_strv(f, fl, CB_META_MAX_PREFIXES, CB_META_MAX_PREFIX, &m->path_prefixes);
                        break;
                case TAG_NOT_AFTER:
                        if (fl != 8) {
                                r = -EBADMSG;
                                break;
                        }
                        m->not_after = cb_get_u64_at(f);
                        r = m->not_after ? 0 : -EBADMSG;
                        break;
                case TAG_LABELS:
                        r = get_strv(f, fl, CB_META_MAX_LABELS, CB_META_MAX_LABEL, &m->labels);
                        break;
                case TAG_CA_FILE:
                        r = get_string(f, fl, CB_META_MAX_CA_FILE, &m->ca_file);
                        break;
                case TAG_PIN:
                        r = get_string(f, fl, CB_META_MAX_PIN, &m->pin);
                        break;
                default:
                        r = -EBADMSG;
                        break;
                }
                if (r < 0)
                        goto fail;
        }
        *ret = m;
        return 0;
fail:
        cb_meta_free(m);
        return r == -ENOMEM ? r : -EBADMSG;
}
