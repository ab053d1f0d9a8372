/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "egress.h"
#include "error.h"

/* ---- destinations ------------------------------------------------------- */

static int parse_hostport(const char *s, size_t n, bool https, cb_dest *out, const char *what) {
        const char *host = s, *port = NULL;
        size_t hl;

        memset(out, 0, sizeof(*out));
        out->https = https;
        if (n == 0)
                return cb_error_set(-EINVAL, "%s: empty host", what);
        if (s[0] == '[') {
                const char *close = memchr(s, ']', n);
                if (!close)
                        return cb_error_set(-EINVAL, "%s: '[' without ']'", what);
                host = s + 1;
                hl = (size_t)(close - host);
                if (close + 1 < s + n) {
                        if (close[1] != ':')
                                return cb_error_set(-EINVAL, "%s: junk after ']'", what);
                        port = close + 2;
                }
        } else {
                const char *colon = memchr(s, ':', n);
                hl = colon ? (size_t)(colon - s) : n;
                if (colon) {
                        if (memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
                                return cb_error_set(-EINVAL, "%s: an IPv6 literal must be in brackets", what);
                        port = colon + 1;
                }
        }
        if (hl == 0 || hl > CB_DEST_HOST_MAX)
                return cb_error_set(-EINVAL, "%s: host empty or longer than %d bytes", what, CB_DEST_HOST_MAX);
        for (size_t i = 0; i < hl; i++) {
                unsigned char c = (unsigned char)host[i];
                if (!(isalnum(c) || c == '-' || c == '.' || (s[0] == '[' && c == ':')))
                        return cb_error_set(-EINVAL, "%s: bad character in host", what);
                out->host[i] = (char)tolower(c);
        }
        out->host[hl] = '\0';
        if (port) {
                size_t pl = (size_t)(s + n - port);
                unsigned long v = 0;
                if (pl == 0 || pl > 5)
                        return cb_error_set(-EINVAL, "%s: bad port", what);
                for (size_t i = 0; i < pl; i++) {
                        if (!isdigit((unsigned char)port[i]))
                                return cb_error_set(-EINVAL, "%s: bad port", what);
                        v = v * 10 + (unsigned long)(port[i] - '0');
                }
                if (v == 0 || v > 65535)
                        return cb_error_set(-EINVAL, "%s: port out of range", what);
                out->port = (unsigned)v;
        } else {
                out->port = https ? 443 : 80;
        }
        unsigned char a[16];
        if (s[0] == '[') {
                if (inet_pton(AF_INET6, out->host, a) != 1)
                        return cb_error_set(-EINVAL, "%s: not an IPv6 address in brackets", what);
                out->literal = true;
        } else {
                out->literal = inet_pton(AF_INET, out->host, a) == 1;
        }
        return 0;
}

int cb_dest_parse(const char *entry, cb_dest *out) {
        bool https = true;

        if (!entry)
                return cb_error_set(-EINVAL, "sealed host: missing");
        if (strncasecmp(entry, "http://", 7) == 0) {
                https = false;
                entry += 7;
        } else if (strncasecmp(entry, "https://", 8) == 0) {
                entry += 8;
        }
        return parse_hostport(entry, strlen(entry), https, out, "sealed host");
}

int cb_dest_parse_authority(const char *authority, bool https, cb_dest *out) {
        return parse_hostport(authority, strlen(authority), https, out, "target host");
}

bool cb_dest_equal(const cb_dest *a, const cb_dest *b) {
        return a->https == b->https && a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* ---- addresses ------------------------------------------------------------ */

static const char *v4_refusal(uint32_t h) {
        if (h == 0xA9FEA9FEu)                              /* 169.254.169.254 */
                return "cloud metadata";
        if ((h >> 24) == 0)
                return "unspecified";
        if ((h >> 24) == 127)
                return "loopback";
        if ((h >> 24) == 10 || (h >> 20) == 0xAC1 || (h >> 16) == 0xC0A8)
                return "private";
        if ((h >> 16) == 0xA9FE)
                return "link-local";
        if ((h >> 22) == (100u << 2 | 1))                  /* 100.64.0.0/10 */
                return "shared (CGNAT)";
        if ((h >> 8) == 0xC00000 || (h >> 8) == 0xC00002 || (h >> 8) == 0xC63364 || (h >> 8) == 0xCB0071 ||
            (h >> 17) == (0xC612u >> 1))                   /* 192.0.0/24, doc nets, 198.18/15 */
                return "reserved";
        if ((h >> 28) == 0xE)
                return "multicast";
        if ((h >> 28) == 0xF)
                return "reserved";
        return NULL;
}

const char *cb_addr_refusal(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET)
                return v4_refusal(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
        if (sa->sa_family != AF_INET6)
                return "not an IP address";
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char zero12[12] = { 0 }, mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff },
                                   nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 },
                                   ec2[16] = { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };
        uint32_t v4;

        if (memcmp(a, ec2, 16) == 0)
                return "cloud metadata";                   /* fd00:ec2::254 */
        if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0) {
                memcpy(&v4, a + 12, 4);
                return v4_refusal(ntohl(v4));              /* v4-mapped, NAT64 64:ff9b::/96 */
        }
        if (memcmp(a, zero12, 12) == 0) {
                if (a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 1)
                        return "loopback";
                if (a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 0)
                        return "unspecified";
                return "reserved";                         /* IPv4-compatible, deprecated */
        }
        if (a[0] == 0x20 && a[1] == 0x02) {                /* 6to4: the IPv4 address in bits 16-47 */
                memcpy(&v4, a + 2, 4);
                return v4_refusal(ntohl(v4));
        }
        if ((a[0] & 0xfe) == 0xfc)
                return "private";                          /* fc00::/7 unique local */
        if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
                return "private";                          /* fec0::/10 site-local (deprecated) */
        if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1)
                return "private";                          /* 64:ff9b:1::/48 local-use NAT64 */
        {
                static const unsigned char siit[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };
                if (memcmp(a, siit, 12) == 0) {            /* ::ffff:0:a.b.c.d (SIIT) */
                        memcpy(&v4, a + 12, 4);
                        return v4_refusal(ntohl(v4)) ?: "reserved";
                }
        }
        if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
                return "link-local";
        if (a[0] == 0xff)
                return "multicast";
        if ((a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) ||      /* documentation */
            (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) ||            /* Teredo */
            (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, zero12, 6) == 0))          /* discard 100::/64 */
                return "reserved";
        return NULL;
}

bool cb_addr_is(const struct sockaddr *sa, const char *literal) {
        unsigned char a[16];

        if (sa->sa_family == AF_INET && inet_pton(AF_INET, literal, a) == 1)
                return memcmp(&((const struct sockaddr_in *)sa)->sin_addr, a, 4) == 0;
        if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, literal, a) == 1)
                return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, a, 16) == 0;
        return false;
}

/* ---- paths and headers ------------------------------------------------- */

bool cb_path_under(const char *path, const char *prefix) {
        size_t pl = strlen(prefix);

        if (strncmp(path, prefix, pl) != 0)
                return false;
        /* "/v1/chat" covers "/v1/chat" and "/v1/chat/...", not "/v1/chatX". */
        return pl == 0 || prefix[pl - 1] == '/' || path[pl] == '\0' || path[pl] == '/';
}

int cb_path_check(const char *path, size_t len) {
        if (len == 0 || path[0] != '/')
                return cb_error_set(-EINVAL, "the path must start with '/'");
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)path[i];
                if (c < 0x21 || c == 0x7f || c == '\\' || c == '#')
                        return cb_error_set(-EINVAL, "the path holds a control byte, space, '\\' or '#'");
                if (c == '%') {
                        if (i + 2 >= len || !isxdigit((unsigned char)path[i + 1]) ||
                            !isxdigit((unsigned char)path[i + 2]))
                                return cb_error_set(-EINVAL, "the path holds a bad %%-escape");
                        unsigned v = (unsigned)strtoul((char[]){ path[i + 1], path[i + 2], 0 }, NULL, 16);
                        if (v == '.' || v == '/' || v == '\\' || v == 0 || v == ';')
                                return cb_error_set(-EINVAL, "the path holds an encoded '.', '/', '\\', ';' or NUL");
                        /* "%25" + hex decodes to another escape (double
                         * encoding); 0xC0/0xC1 and 0xE0 0x80-0x9F start
                         * overlong UTF-8 ("%c0%ae" is a '.' to some). */
                        bool next_low = i + 5 < len && path[i + 3] == '%' && (path[i + 4] == '8' ||
                                                                              (v == 0xE0 && path[i + 4] == '9'));
                        if ((v == '%' && i + 4 < len && isxdigit((unsigned char)path[i + 3]) &&
                             isxdigit((unsigned char)path[i + 4])) ||
                            v == 0xC0 || v == 0xC1 || v >= 0xF5 || ((v == 0xE0 || v == 0xF0) && next_low))
                                return cb_error_set(-EINVAL, "the path holds a double or overlong %%-escape");
                }
                if (c == '/' && i + 1 < len && path[i + 1] == '.') {
                        size_t j = i + 2;
                        if (j < len && path[j] == '.')
                                j++;
                        /* "/..;x" counts: servlet containers drop ";x". */
                        if (j == len || path[j] == '/' || path[j] == ';')
                                return cb_error_set(-EINVAL, "the path holds a '.' or '..' segment");
                }
        }
        return 0;
}

bool cb_header_bad(const char *name, const char *value) {
        if (!name || !*name)
                return true;
        for (const char *p = name; *p; p++) {
                unsigned char c = (unsigned char)*p;
                if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c)))
                        return true;
        }
        for (const char *p = value ? value : ""; *p; p++)
                if (*p == '\r' || *p == '\n')
                        return true;
        return false;
}

bool cb_header_hop(const char *name) {
        static const char *const hop[] = { "connection", "keep-alive", "proxy-connection", "te", "trailer",
                                           "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization",
                                           "content-length", "host", "expect", NULL };
        for (size_t i = 0; hop[i]; i++)
                if (strcasecmp(name, hop[i]) == 0)
                        return true;
        return false;
}

/* ---- injection templates ----------------------------------------------- */

int cb_inject_parse(const char *tmpl, cb_inject *out) {
        memset(out, 0, sizeof(*out));
        if (!tmpl || !*tmpl)
                tmpl = "Authorization: Bearer {}";
        if (strncmp(tmpl, "basic:", 6) == 0 || strncmp(tmpl, "query:", 6) == 0) {
                out->kind = tmpl[0] == 'b' ? CB_INJECT_BASIC : CB_INJECT_QUERY;
                if (strlen(tmpl + 6) == 0 || strlen(tmpl + 6) >= sizeof(out->name))
                        return cb_error_set(-EINVAL, "inject template: empty or long name after '%.6s'", tmpl);
                strcpy(out->name, tmpl + 6);
                for (const char *p = out->name; *p; p++)
                        if ((unsigned char)*p < 0x21 || *p == 0x7f || (out->kind == CB_INJECT_QUERY && strchr("&=#?%+", *p)) ||
                            (out->kind == CB_INJECT_BASIC && *p == ':'))
                                return cb_error_set(-EINVAL, "inject template: bad character in '%s'", tmpl);
                return 0;
        }
        const char *colon = strchr(tmpl, ':'), *hole = strstr(tmpl, "{}");
        if (!colon || !hole || hole < colon || strstr(hole + 2, "{}"))
                return cb_error_set(-EINVAL, "inject template: want 'Header: text {} text', 'basic:USER' or "
                                             "'query:PARAM'");
        size_t nl = (size_t)(colon - tmpl);
        const char *v = colon + 1;
        while (*v == ' ')
                v++;
        if (nl == 0 || nl >= sizeof(out->name) || (size_t)(hole - v) >= sizeof(out->prefix) ||
            strlen(hole + 2) >= sizeof(out->suffix))
                return cb_error_set(-EINVAL, "inject template: header name or text too long");
        out->kind = CB_INJECT_HEADER;
        memcpy(out->name, tmpl, nl);
        memcpy(out->prefix, v, (size_t)(hole - v));
        strcpy(out->suffix, hole + 2);
        if (cb_header_bad(out->name, out->prefix) || cb_header_bad(out->name, out->suffix) || cb_header_hop(out->name))
                return cb_error_set(-EINVAL, "inject template: header '%s' cannot carry a credential", out->name);
        return 0;
}

const char *cb_inject_token(const cb_inject *in, const char *value, size_t *ret_len) {
        size_t pl = strlen(in->prefix), sl = strlen(in->suffix), vl = strlen(value);

        if (in->kind != CB_INJECT_HEADER || vl < pl + sl || strncasecmp(value, in->prefix, pl) != 0 ||
            strcmp(value + vl - sl, in->suffix) != 0)
                return NULL;
        *ret_len = vl - pl - sl;
        return value + pl;
}
