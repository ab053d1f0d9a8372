/* SPDX-License-Identifier: Apache-2.0 */
/* ClientHello SNI (sni.h has the contract). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sni.h"

/* A bounds-checked reader over one buffer. */
typedef struct rd {
        const unsigned char *p;
        size_t n, off;
} rd;

static bool get_u8(rd *r, unsigned *v) {
        if (r->n - r->off < 1)
                return false;
        *v = r->p[r->off++];
        return true;
}
static bool get_u16(rd *r, unsigned *v) {
        if (r->n - r->off < 2)
                return false;
        *v = (unsigned)r->p[r->off] << 8 | r->p[r->off + 1];
        r->off += 2;
        return true;
}
/* A sub-reader over the next len bytes. */
static bool sub(rd *r, size_t len, rd *out) {
        if (r->n - r->off < len)
                return false;
        *out = (rd){ .p = r->p + r->off, .n = len };
        r->off += len;
        return true;
}

static cb_sni_result fail(cb_sni_result res, const char *why, const char **ret_why) {
        if (ret_why)
                *ret_why = why;
        return res;
}

/* A DNS host name: 1-253 bytes of letters, digits, '-' and '.', labels of
 * 1-63 not starting or ending with '-'; one trailing dot dropped; lower
 * cased.  (No IP literal: RFC 6066 forbids them in SNI.) */
static bool host_name(const unsigned char *s, size_t len, char out[CB_SNI_NAME_MAX + 1]) {
        size_t label = 0;
        bool all_digits_or_dots = true;

        if (len && s[len - 1] == '.')
                len--;
        if (len == 0 || len > CB_SNI_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
                        if ((label == 0 && c == '-') || ++label > 63)
                                return false;
                        if (!(c >= '0' && c <= '9'))
                                all_digits_or_dots = false;
                } else {
                        return false;
                }
                out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        if (s[len - 1] == '-' || all_digits_or_dots)
                return false;
        out[len] = '\0';
        return true;
}

static cb_sni_result parse(const unsigned char *p, size_t n, char name[CB_SNI_NAME_MAX + 1], const char **ret_why) {
        unsigned char hello[CB_SNI_HELLO_MAX + 4];
        size_t have = 0, need = 0, off = 0;
        bool whole = false;

        name[0] = '\0';
        if (ret_why)
                *ret_why = "";
        if (n > CB_SNI_INPUT_MAX)
                return fail(CB_SNI_TOO_LARGE, "more input than a ClientHello may take", ret_why);
        /* Reassemble the handshake message from the records' payloads. */
        while (off < n && !whole) {
                if (n - off < 5) {
                        if (p[off] != 0x16)
                                return fail(CB_SNI_NOT_TLS, "not a TLS handshake record", ret_why);
                        return CB_SNI_MORE;
                }
                unsigned type = p[off], major = p[off + 1];
                size_t rlen = (size_t)p[off + 3] << 8 | p[off + 4];
                if (type != 0x16 || major != 3)
                        return fail(CB_SNI_NOT_TLS, "not a TLS handshake record", ret_why);
                if (rlen == 0 || rlen > 16384)
                        return fail(CB_SNI_MALFORMED, "a record length out of range", ret_why);
                off += 5;
                size_t take = n - off < rlen ? n - off : rlen;
                if (have + take > sizeof(hello))
                        return fail(CB_SNI_TOO_LARGE, "a ClientHello larger than the cap", ret_why);
                memcpy(hello + have, p + off, take);
                have += take;
                off += take;
                if (have >= 4 && !need) {
                        if (hello[0] != 0x01)
                                return fail(CB_SNI_MALFORMED, "the first handshake message is not a ClientHello",
                                            ret_why);
                        need = 4 + ((size_t)hello[1] << 16 | (size_t)hello[2] << 8 | hello[3]);
                        if (need > CB_SNI_HELLO_MAX + 4)
                                return fail(CB_SNI_TOO_LARGE, "a ClientHello larger than the cap", ret_why);
                }
                if (take < rlen)
                        return CB_SNI_MORE; /* this record is not all here */
                if (need && have >= need)
                        whole = true;
        }
        if (!whole)
                return CB_SNI_MORE;
        if (have > need)
                return fail(CB_SNI_MALFORMED, "another handshake message in the ClientHello's record", ret_why);

        rd r = { .p = hello, .n = need, .off = 4 };
        rd sid, suites, comp, exts;
        unsigned v, len;
        if (!get_u16(&r, &v) || (v >> 8) != 3)
                return fail(CB_SNI_MALFORMED, "ClientHello version", ret_why);
        if (r.n - r.off < 32)
                return fail(CB_SNI_MALFORMED, "ClientHello random", ret_why);
        r.off += 32;
        if (!get_u8(&r, &len) || len > 32 || !sub(&r, len, &sid))
                return fail(CB_SNI_MALFORMED, "ClientHello session id", ret_why);
        if (!get_u16(&r, &len) || len < 2 || (len & 1) || !sub(&r, len, &suites))
                return fail(CB_SNI_MALFORMED, "ClientHello cipher suites", ret_why);
        if (!get_u8(&r, &len) || len < 1 || !sub(&r, len, &comp))
                return fail(CB_SNI_MALFORMED, "ClientHello compression methods", ret_why);
        if (r.off == r.n)
                return fail(CB_SNI_NONE, "no extensions", ret_why);
        if (!get_u16(&r, &len) || !sub(&r, len, &exts) || r.off != r.n)
                return fail(CB_SNI_MALFORMED, "ClientHello extensions length", ret_why);
        bool seen_sni = false, ech = false;
        while (exts.off < exts.n) {
                unsigned type;
                rd ext;
                if (!get_u16(&exts, &type) || !get_u16(&exts, &len) || !sub(&exts, len, &ext))
                        return fail(CB_SNI_MALFORMED, "an extension's length", ret_why);
                if (type == 0xfe0d)
                        ech = true;
                if (type != 0)
                        continue;
                if (seen_sni)
                        return fail(CB_SNI_MALFORMED, "two server_name extensions", ret_why);
                seen_sni = true;
                rd list;
                if (!get_u16(&ext, &len) || len == 0 || !sub(&ext, len, &list) || ext.off != ext.n)
                        return fail(CB_SNI_MALFORMED, "server_name list length", ret_why);
                bool got = false;
                while (list.off < list.n) {
                        unsigned nt;
                        rd hn;
                        if (!get_u8(&list, &nt) || !get_u16(&list, &len) || !sub(&list, len, &hn))
                                return fail(CB_SNI_MALFORMED, "a server_name entry's length", ret_why);
                        if (nt != 0)
                                continue; /* other name types: none defined */
                        if (got)
                                return fail(CB_SNI_MALFORMED, "two host names in server_name", ret_why);
                        if (!host_name(hn.p, hn.n, name)) {
                                name[0] = '\0';
                                return fail(CB_SNI_MALFORMED, "server_name is not a DNS host name", ret_why);
                        }
                        got = true;
                }
                if (!got)
                        return fail(CB_SNI_MALFORMED, "server_name without a host name", ret_why);
        }
        if (ech) {
                name[0] = '\0';
                return fail(CB_SNI_ECH, "encrypted_client_hello: the server name is hidden", ret_why);
        }
        if (!seen_sni)
                return fail(CB_SNI_NONE, "no server_name", ret_why);
        return CB_SNI_FOUND;
}

cb_sni_result cb_sni_parse(const unsigned char *p, size_t n, char name[CB_SNI_NAME_MAX + 1], const char **ret_why) {
        cb_sni_result r = parse(p, n, name, ret_why);

        /* A name read before a later refusal is no answer (found by
         * fuzz-sni: a second server_name extension after a good one). */
        if (r != CB_SNI_FOUND)
                name[0] = '\0';
        return r;
}
