/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's MAC chain, line parser and verifier (see audit_format.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "audit_format.h"
#include "error.h"

#define MAC_SUFFIX_LEN (8 + 2 * CB_AUDIT_MAC_LEN + 2) /* ,"mac":" + hex + "} */

static const unsigned char zero_mac[CB_AUDIT_MAC_LEN];

static void derive(const unsigned char master[CB_AUDIT_KEY_LEN], const char *label, const unsigned char *id,
                   size_t idlen, unsigned char out[CB_AUDIT_KEY_LEN]) {
        crypto_generichash_state st;

        crypto_generichash_init(&st, master, CB_AUDIT_KEY_LEN, CB_AUDIT_KEY_LEN);
        crypto_generichash_update(&st, (const unsigned char *)label, strlen(label) + 1); /* with its NUL */
        crypto_generichash_update(&st, id, idlen);
        crypto_generichash_final(&st, out, CB_AUDIT_KEY_LEN);
        sodium_memzero(&st, sizeof(st));
}

void cb_audit_segment_keys(const unsigned char master[CB_AUDIT_KEY_LEN],
                           const unsigned char log_id[CB_AUDIT_LOG_ID_LEN], cb_audit_keys *ret) {
        derive(master, "cb-audit-mac", log_id, CB_AUDIT_LOG_ID_LEN, ret->mac);
        derive(master, "cb-audit-id", log_id, CB_AUDIT_LOG_ID_LEN, ret->id);
}

void cb_audit_id_hash(const cb_audit_keys *k, const char *id, char out[CB_AUDIT_ID_HASH_LEN + 1]) {
        unsigned char h[16];

        crypto_generichash(h, sizeof(h), (const unsigned char *)id, strlen(id), k->id, sizeof(k->id));
        memcpy(out, "hk1:", 4);
        sodium_bin2hex(out + 4, 2 * sizeof(h) + 1, h, sizeof(h));
}

/* Length of the valid UTF-8 sequence at p[0..n) (jansson's rules: no
 * overlong forms, surrogates or code points past U+10FFFF), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
        size_t len;
        uint32_t c;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2, c = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                len = 3, c = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                len = 4, c = p[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                return 0;
        return len;
}

json_t *cb_json_string_lossy(const char *s) {
        const unsigned char *p = (const unsigned char *)(s ? s : "");
        size_t n = strlen((const char *)p), o = 0;
        json_t *j;
        char *t;

        j = json_stringn((const char *)p, n);
        if (j)
                return j;
        t = malloc(4 * n + 1); /* each invalid byte: 4 characters */
        if (!t)
                return NULL;
        for (size_t i = 0; i < n;) {
                size_t k = utf8_seq(p + i, n - i);
                if (k) {
                        memcpy(t + o, p + i, k);
                        o += k;
                        i += k;
                } else {
                        o += (size_t)snprintf(t + o, 5, "\\x%02x", p[i]);
                        i++;
                }
        }
        t[o] = 0;
        j = json_stringn(t, o);
        free(t);
        return j;
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char *cb_audit_scrub_ids(const cb_audit_keys *k, const char *s) {
        const size_t acc_len = 4 + 24;
        size_t n = strlen(s), o = 0;
        /* Each 28-byte accessor becomes a 36-byte hash: at most 9/7 as long. */
        char *out = malloc(n + n / 3 + 1), h[CB_AUDIT_ID_HASH_LEN + 1], acc[4 + 24 + 1];

        if (!out)
                return NULL;
        for (size_t i = 0; i < n;) {
                bool hit = n - i >= acc_len && (s[i] == 'c' || s[i] == 'C') && (s[i + 1] == 'b' || s[i + 1] == 'B') &&
                           (s[i + 2] == 'a' || s[i + 2] == 'A') && s[i + 3] == '_';
                for (size_t j = 4; hit && j < acc_len; j++)
                        hit = is_hex(s[i + j]);
                if (hit && i + acc_len < n && is_hex(s[i + acc_len]))
                        hit = false; /* longer than an accessor: not one */
                if (!hit) {
                        out[o++] = s[i++];
                        continue;
                }
                for (size_t j = 0; j < acc_len; j++) /* "CBA" and hex digits: all within A-F */
                        acc[j] = (char)(s[i + j] >= 'A' && s[i + j] <= 'F' ? s[i + j] + ('a' - 'A') : s[i + j]);
                acc[acc_len] = 0;
                cb_audit_id_hash(k, acc, h);
                memcpy(out + o, h, CB_AUDIT_ID_HASH_LEN);
                o += CB_AUDIT_ID_HASH_LEN;
                i += acc_len;
        }
        out[o] = 0;
        return out;
}

static void scrub_value(const cb_audit_keys *k, json_t *v) {
        const char *key;
        json_t *e;
        size_t i;

        if (json_is_object(v)) {
                json_object_foreach(v, key, e) {
                        if (json_is_string(e)) {
                                if (strstr(json_string_value(e), "_") && json_string_length(e) >= 28) {
                                        char *t = cb_audit_scrub_ids(k, json_string_value(e));
                                        json_object_set_new(v, key, t ? json_string(t) : json_string("?"));
                                        free(t);
                                }
                        } else {
                                scrub_value(k, e);
                        }
                }
        } else if (json_is_array(v)) {
                json_array_foreach(v, i, e) {
                        if (json_is_string(e)) {
                                if (json_string_length(e) >= 28) {
                                        char *t = cb_audit_scrub_ids(k, json_string_value(e));
                                        json_array_set_new(v, i, t ? json_string(t) : json_string("?"));
                                        free(t);
                                }
                        } else {
                                scrub_value(k, e);
                        }
                }
        }
}

void cb_audit_hide_ids(const cb_audit_keys *k, json_t *o) {
        static const char *const ids[] = { "accessor", "token_hash", "token", "by_accessor" };
        char h[CB_AUDIT_ID_HASH_LEN + 1];
        json_t *v;

        if (!json_is_object(o))
                return;
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                v = json_object_get(o, ids[i]);
                if (json_is_string(v) && json_string_length(v)) {
                        cb_audit_id_hash(k, json_string_value(v), h);
                        json_object_set_new(o, ids[i], json_string(h));
                } else if (v && !json_is_string(v)) {
                        json_object_del(o, ids[i]); /* not a shape we know how to hash: never written */
                }
        }
        v = json_object_get(o, "accessors");
        if (json_is_array(v)) {
                json_t *a = json_array(), *e;
                size_t i;
                json_array_foreach(v, i, e) {
                        if (json_is_string(e)) {
                                cb_audit_id_hash(k, json_string_value(e), h);
                                json_array_append_new(a, json_string(h));
                        }
                }
                json_object_set_new(o, "accessors", a);
        } else if (v) {
                json_object_del(o, "accessors");
        }
        /* The hashed members are "hk1:" + hex now: nothing left to find. */
        scrub_value(k, o);
}

static void chain_mac(const unsigned char key[CB_AUDIT_KEY_LEN], const unsigned char prev[CB_AUDIT_MAC_LEN],
                      const char *canon, size_t len, unsigned char out[CB_AUDIT_MAC_LEN]) {
        crypto_generichash_state st;

        crypto_generichash_init(&st, key, CB_AUDIT_KEY_LEN, CB_AUDIT_MAC_LEN);
        crypto_generichash_update(&st, prev, CB_AUDIT_MAC_LEN);
        crypto_generichash_update(&st, (const unsigned char *)canon, len);
        crypto_generichash_final(&st, out, CB_AUDIT_MAC_LEN);
}

int cb_audit_seal(const cb_audit_keys *k, const unsigned char prev[CB_AUDIT_MAC_LEN], const char *canon, size_t len,
                  unsigned char ret_mac[CB_AUDIT_MAC_LEN], char **ret_line, size_t *ret_len) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        char *line;

        if (len < 2 || canon[0] != '{' || canon[len - 1] != '}' || len > CB_AUDIT_LINE_MAX - MAC_SUFFIX_LEN - 1)
                return -EINVAL;
        chain_mac(k->mac, prev, canon, len, mac);
        line = malloc(len - 1 + MAC_SUFFIX_LEN + 2);
        if (!line)
                return -ENOMEM;
        memcpy(line, canon, len - 1);
        size_t n = len - 1;
        memcpy(line + n, ",\"mac\":\"", 8);
        n += 8;
        sodium_bin2hex(line + n, 2 * CB_AUDIT_MAC_LEN + 1, mac, sizeof(mac));
        n += 2 * CB_AUDIT_MAC_LEN;
        memcpy(line + n, "\"}\n", 4); /* with a NUL after the newline */
        n += 3;
        memcpy(ret_mac, mac, sizeof(mac));
        *ret_line = line;
        *ret_len = n;
        return 0;
}

/* Exactly 2*len lowercase hex digits. */
static int hex_exact(const char *s, size_t slen, unsigned char *out, size_t len) {
        size_t got;

        if (slen != 2 * len)
                return -1;
        for (size_t i = 0; i < slen; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return -1;
        if (sodium_hex2bin(out, len, s, slen, NULL, &got, NULL) != 0 || got != len)
                return -1;
        return 0;
}

static int hex_field(json_t *o, const char *key, unsigned char *out, size_t len) {
        json_t *v = json_object_get(o, key);

        if (!json_is_string(v))
                return -1;
        return hex_exact(json_string_value(v), json_string_length(v), out, len);
}

void cb_audit_line_done(cb_audit_line *l) {
        if (l) {
                free(l->canon);
                l->canon = NULL;
        }
}

int cb_audit_line_parse(const char *p, size_t n, cb_audit_line *ret, char *err, size_t errlen) {
        static const char sfx[] = ",\"mac\":\"";
        cb_audit_line l = { 0 };
        json_t *o = NULL, *v;
        json_error_t jerr;
        int r = -EBADMSG;

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); goto out; } while (0)
        if (n > CB_AUDIT_LINE_MAX)
                BAD("longer than %d bytes", CB_AUDIT_LINE_MAX);
        if (memchr(p, 0, n))
                BAD("holds a NUL byte");
        if (n < 1 + MAC_SUFFIX_LEN + 1 || p[0] != '{' || memcmp(p + n - MAC_SUFFIX_LEN, sfx, 8) != 0 ||
            memcmp(p + n - 2, "\"}", 2) != 0)
                BAD("no record MAC at the end of the line");
        if (hex_exact(p + n - MAC_SUFFIX_LEN + 8, 2 * CB_AUDIT_MAC_LEN, l.mac, sizeof(l.mac)) < 0)
                BAD("the record MAC is not %d lowercase hex digits", 2 * CB_AUDIT_MAC_LEN);
        l.canon_len = n - MAC_SUFFIX_LEN + 1;
        l.canon = malloc(l.canon_len + 1);
        if (!l.canon) {
                r = -ENOMEM;
                snprintf(err, errlen, "out of memory");
                goto out;
        }
        memcpy(l.canon, p, l.canon_len - 1);
        l.canon[l.canon_len - 1] = '}';
        l.canon[l.canon_len] = 0;
        o = json_loadb(l.canon, l.canon_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o))
                BAD("not a JSON object");
        if (json_object_get(o, "mac"))
                BAD("a second \"mac\" field");
        v = json_object_get(o, "seq");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                BAD("no \"seq\" (a non-negative integer)");
        l.seq = (uint64_t)json_integer_value(v);
        v = json_object_get(o, "type");
        l.begin = json_is_string(v) && strcmp(json_string_value(v), "audit.begin") == 0;
        if (l.begin != (l.seq == 0))
                BAD(l.begin ? "a segment header with seq %" PRIu64 : "seq 0 is not a segment header", l.seq);
        if (l.begin) {
                if (hex_field(o, "log", l.log_id, sizeof(l.log_id)) < 0)
                        BAD("segment header without a \"log\" id");
                l.has_prev = json_object_get(o, "prev_log") != NULL;
                if (l.has_prev) {
                        v = json_object_get(o, "prev_seq");
                        if (hex_field(o, "prev_log", l.prev_log_id, sizeof(l.prev_log_id)) < 0 ||
                            hex_field(o, "prev_mac", l.prev_mac, sizeof(l.prev_mac)) < 0 || !json_is_integer(v) ||
                            json_integer_value(v) < 0)
                                BAD("segment header with a malformed link to the previous segment");
                        l.prev_seq = (uint64_t)json_integer_value(v);
                }
                v = json_object_get(o, "offset");
                l.has_offset = v != NULL;
                if (l.has_offset) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0)
                                BAD("segment header with a malformed \"offset\"");
                        l.offset = (uint64_t)json_integer_value(v);
                }
        }
        *ret = l;
        l.canon = NULL;
        r = 0;
out:
#undef BAD
        json_decref(o);
        free(l.canon);
        return r;
}

/* ---- head checkpoint ---- */

static void head_tag(const unsigned char master[CB_AUDIT_KEY_LEN], const char *text, size_t n,
                     unsigned char out[32]) {
        crypto_generichash_state st;

        crypto_generichash_init(&st, master, CB_AUDIT_KEY_LEN, 32);
        crypto_generichash_update(&st, (const unsigned char *)"cb-audit-head", 14);
        crypto_generichash_update(&st, (const unsigned char *)text, n);
        crypto_generichash_final(&st, out, 32);
}

void cb_audit_head_encode(const unsigned char master[CB_AUDIT_KEY_LEN], const cb_audit_head *h,
                          char out[CB_AUDIT_HEAD_TEXT_LEN]) {
        char log[2 * CB_AUDIT_LOG_ID_LEN + 1], mac[2 * CB_AUDIT_MAC_LEN + 1], tag[65];
        unsigned char t[32];
        int n;

        sodium_bin2hex(log, sizeof(log), h->log_id, sizeof(h->log_id));
        sodium_bin2hex(mac, sizeof(mac), h->mac, sizeof(h->mac));
        n = snprintf(out, CB_AUDIT_HEAD_TEXT_LEN, "cbaudithead1 %s %020" PRIu64 " %s ", log, h->seq, mac);
        head_tag(master, out, (size_t)n, t);
        sodium_bin2hex(tag, sizeof(tag), t, sizeof(t));
        memcpy(out + n, tag, 64);
        memset(out + n + 64, ' ', CB_AUDIT_HEAD_TEXT_LEN - (size_t)n - 64 - 1);
        out[CB_AUDIT_HEAD_TEXT_LEN - 1] = '\n';
}

int cb_audit_head_decode(const unsigned char master[CB_AUDIT_KEY_LEN], const char *p, size_t n, cb_audit_head *ret) {
        const size_t fixed = 13 + 2 * CB_AUDIT_LOG_ID_LEN + 1 + 20 + 1 + 2 * CB_AUDIT_MAC_LEN + 1;
        cb_audit_head h = { .set = true };
        unsigned char want[32], got[32];
        char seq[21];

        if (n != CB_AUDIT_HEAD_TEXT_LEN || memcmp(p, "cbaudithead1 ", 13) != 0 ||
            hex_exact(p + 13, 2 * CB_AUDIT_LOG_ID_LEN, h.log_id, sizeof(h.log_id)) < 0 ||
            p[13 + 2 * CB_AUDIT_LOG_ID_LEN] != ' ' ||
            hex_exact(p + 13 + 2 * CB_AUDIT_LOG_ID_LEN + 22, 2 * CB_AUDIT_MAC_LEN, h.mac, sizeof(h.mac)) < 0 ||
            hex_exact(p + fixed, 64, got, sizeof(got)) < 0)
                return -EBADMSG;
        memcpy(seq, p + 13 + 2 * CB_AUDIT_LOG_ID_LEN + 1, 20);
        seq[20] = 0;
        for (int i = 0; i < 20; i++)
                if (seq[i] < '0' || seq[i] > '9')
                        return -EBADMSG;
        h.seq = strtoull(seq, NULL, 10);
        head_tag(master, p, fixed, want);
        if (sodium_memcmp(want, got, sizeof(want)) != 0)
                return -EBADMSG;
        *ret = h;
        return 0;
}

int cb_audit_head_catch_up(const unsigned char master[CB_AUDIT_KEY_LEN], cb_audit_head *head, const char *line,
                           size_t n) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        cb_audit_keys k;
        cb_audit_line l;
        char err[160];
        int r = 0;

        if (!head->set || cb_audit_line_parse(line, n, &l, err, sizeof(err)) < 0)
                return 0;
        if (l.begin) {
                if (!l.has_prev || memcmp(l.prev_log_id, head->log_id, sizeof(head->log_id)) != 0 ||
                    l.prev_seq != head->seq || sodium_memcmp(l.prev_mac, head->mac, sizeof(head->mac)) != 0)
                        goto out;
                cb_audit_segment_keys(master, l.log_id, &k);
                chain_mac(k.mac, zero_mac, l.canon, l.canon_len, mac);
        } else {
                if (l.seq != head->seq + 1)
                        goto out;
                cb_audit_segment_keys(master, head->log_id, &k);
                chain_mac(k.mac, head->mac, l.canon, l.canon_len, mac);
        }
        sodium_memzero(&k, sizeof(k));
        if (sodium_memcmp(mac, l.mac, sizeof(mac)) != 0)
                goto out;
        if (l.begin)
                memcpy(head->log_id, l.log_id, sizeof(head->log_id));
        head->seq = l.seq;
        memcpy(head->mac, mac, sizeof(mac));
        r = 1;
out:
        cb_audit_line_done(&l);
        return r;
}

/* ---- verifier ---- */

void cb_audit_verifier_init(cb_audit_verifier *v, const unsigned char master[CB_AUDIT_KEY_LEN]) {
        memset(v, 0, sizeof(*v));
        v->master = master;
}

void cb_audit_verifier_done(cb_audit_verifier *v) {
        sodium_memzero(&v->keys, sizeof(v->keys));
}

void cb_audit_verifier_file(cb_audit_verifier *v) {
        v->line = 0;
        v->offset = 0;
}

static int fail(cb_audit_verifier *v, uint64_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cb_audit_verifier *v, uint64_t line, const char *fmt, ...) {
        va_list ap;

        v->failed = true;
        v->bad_line = line;
        va_start(ap, fmt);
        vsnprintf(v->problem, sizeof(v->problem), fmt, ap);
        va_end(ap);
        return 1;
}

int cb_audit_verifier_line(cb_audit_verifier *v, const char *p, size_t n, bool complete) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        cb_audit_line l;
        char err[160];
        int r;

        if (v->failed)
                return 1;
        v->line++;
        uint64_t at = v->offset; /* this line's byte offset in its file */
        v->offset += n + 1;
        if (!complete)
                return fail(v, v->line, "incomplete record (no newline): the file was cut inside this line");
        if (cb_audit_line_parse(p, n, &l, err, sizeof(err)) < 0)
                return fail(v, v->line, "not an intact audit record (%s): edited or corrupted", err);
        if (l.begin) {
                cb_audit_keys k;
                cb_audit_segment_keys(v->master, l.log_id, &k);
                chain_mac(k.mac, zero_mac, l.canon, l.canon_len, mac);
                if (sodium_memcmp(mac, l.mac, sizeof(mac)) != 0) {
                        sodium_memzero(&k, sizeof(k));
                        r = fail(v, v->line, "segment header's MAC does not match: edited, or written under "
                                             "another store's key");
                        goto out;
                }
                /* The header says how long its file was when it was
                 * written: anything else means bytes before it were
                 * removed (whole segments, which the links below cannot
                 * see at the start of the first file) or added. */
                if (l.has_offset && l.offset != at) {
                        sodium_memzero(&k, sizeof(k));
                        r = fail(v, v->line, l.offset > at ? "records before this line were removed (the segment "
                                                             "header was written at byte %" PRIu64 ", it is now at "
                                                             "byte %" PRIu64 ")"
                                                           : "bytes were added before this line (the segment header "
                                                             "was written at byte %" PRIu64 ", it is now at byte %"
                                                             PRIu64 ")",
                                 l.offset, at);
                        goto out;
                }
                if (!l.has_offset)
                        v->no_offset++;
                if (!v->in_segment && v->segments == 0 && l.has_prev) {
                        char pl[2 * CB_AUDIT_LOG_ID_LEN + 1];
                        sodium_bin2hex(pl, sizeof(pl), l.prev_log_id, sizeof(l.prev_log_id));
                        snprintf(v->start_note, sizeof(v->start_note),
                                 "begins with a link to log %s seq %" PRIu64 "; the older file was not given", pl,
                                 l.prev_seq);
                }
                if (v->in_segment) {
                        /* The new segment must say the previous one ended
                         * exactly where this file's previous record is. */
                        if (!l.has_prev) {
                                r = fail(v, v->line, "a new segment that does not link to the previous one "
                                                     "(seq %" PRIu64 "): the chain was restarted",
                                         v->seq);
                        } else if (memcmp(l.prev_log_id, v->log_id, sizeof(v->log_id)) != 0) {
                                r = fail(v, v->line, "this segment follows another log than the one before it: "
                                                     "records or files are missing or out of order");
                        } else if (l.prev_seq > v->seq) {
                                r = fail(v, v->line, "records seq %" PRIu64 "..%" PRIu64 " of the previous "
                                                     "segment are missing before this line (removed or cut)",
                                         v->seq + 1, l.prev_seq);
                        } else if (l.prev_seq != v->seq || sodium_memcmp(l.prev_mac, v->mac, sizeof(v->mac)) != 0) {
                                r = fail(v, v->line, "the previous segment's end (seq %" PRIu64 ") is not the "
                                                     "record the next segment links to",
                                         v->seq);
                        } else {
                                r = 0;
                        }
                        if (r) {
                                sodium_memzero(&k, sizeof(k));
                                goto out;
                        }
                }
                v->keys = k;
                sodium_memzero(&k, sizeof(k));
                memcpy(v->log_id, l.log_id, sizeof(v->log_id));
                v->in_segment = true;
                v->seq = 0;
                memcpy(v->mac, mac, sizeof(mac));
                v->segments++;
                v->records++;
                r = 0;
                goto out;
        }
        if (!v->in_segment) {
                r = fail(v, v->line, "record seq %" PRIu64 " before any segment header: the file's beginning "
                                     "was removed (or give the older file first)",
                         l.seq);
                goto out;
        }
        if (l.seq != v->seq + 1) {
                if (l.seq > v->seq + 1)
                        r = fail(v, v->line, "record seq %" PRIu64 " where seq %" PRIu64 " belongs: record(s) "
                                             "removed or reordered",
                                 l.seq, v->seq + 1);
                else
                        r = fail(v, v->line, "record seq %" PRIu64 " again or out of order (expected seq %" PRIu64
                                             "): reordered or replayed",
                                 l.seq, v->seq + 1);
                goto out;
        }
        chain_mac(v->keys.mac, v->mac, l.canon, l.canon_len, mac);
        if (sodium_memcmp(mac, l.mac, sizeof(mac)) != 0) {
                r = fail(v, v->line, "record seq %" PRIu64 " does not match its MAC: edited", l.seq);
                goto out;
        }
        v->seq = l.seq;
        memcpy(v->mac, mac, sizeof(mac));
        v->records++;
        r = 0;
out:
        cb_audit_line_done(&l);
        return r;
}

static int verifier_tail(cb_audit_verifier *v, const cb_audit_head *head, bool required);

/* What the tail check cannot vouch for goes before its note. */
int cb_audit_verifier_end(cb_audit_verifier *v, const cb_audit_head *head, bool required) {
        char tail[sizeof(v->tail_note)];
        int r = verifier_tail(v, head, required);

        if (r || (!v->start_note[0] && !v->no_offset))
                return r;
        memcpy(tail, v->tail_note, sizeof(tail));
        char nooff[160] = "";
        if (v->no_offset)
                snprintf(nooff, sizeof(nooff), "%" PRIu64 " segment header(s) without \"offset\" (older format): "
                         "segments removed before them would not be noticed; ", v->no_offset);
        snprintf(v->tail_note, sizeof(v->tail_note), "%s%s%s%s", v->start_note, v->start_note[0] ? "; " : "",
                 nooff, tail);
        return 0;
}

static int verifier_tail(cb_audit_verifier *v, const cb_audit_head *head, bool required) {
        if (v->failed)
                return 1;
        if (!head || !head->set) {
                snprintf(v->tail_note, sizeof(v->tail_note), "no head checkpoint: a cut tail cannot be detected");
                return 0;
        }
        if (!v->in_segment || memcmp(head->log_id, v->log_id, sizeof(v->log_id)) != 0) {
                if (required)
                        return fail(v, v->line + 1, "the newest records (up to seq %" PRIu64 " of the current "
                                                    "segment) are missing at the end: the file was truncated after "
                                                    "line %" PRIu64 " (or is an older file: give all files, "
                                                    "oldest first)",
                                    head->seq, v->line);
                snprintf(v->tail_note, sizeof(v->tail_note),
                         "the newest segment is not the last one given (older file?): its tail is vouched for by "
                         "the next file's segment header");
                return 0;
        }
        if (head->seq > v->seq)
                return fail(v, v->line + 1, "records seq %" PRIu64 "..%" PRIu64 " are missing at the end: the "
                                            "file was truncated after line %" PRIu64,
                            v->seq + 1, head->seq, v->line);
        if (head->seq == v->seq && sodium_memcmp(head->mac, v->mac, sizeof(v->mac)) != 0)
                return fail(v, v->line, "the last record is not the one the head checkpoint names");
        /* head->seq < v->seq: records were appended after the head was
         * read (a live log); they verified above. */
        v->tail_checked = true;
        snprintf(v->tail_note, sizeof(v->tail_note), "tail matches the head (seq %" PRIu64 ")", head->seq);
        return 0;
}

int cb_audit_verify_files(cb_audit_verifier *v, const char *const *paths, size_t n, const cb_audit_head *head,
                          bool required, size_t *ret_bad_file) {
        const size_t cap = CB_AUDIT_LINE_MAX + 2; /* the line, its newline, the NUL */
        char *line = malloc(cap);
        int r = 0;

        *ret_bad_file = 0;
        if (!line)
                return cb_error_set(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n && !v->failed; i++) {
                struct stat st;
                int fd = open(paths[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        r = cb_error_set(-errno, "%s: %s", paths[i], strerror(errno));
                        goto out;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        r = cb_error_set(-EINVAL, "%s: not a regular file", paths[i]);
                        goto out;
                }
                FILE *f = fdopen(fd, "r");
                if (!f) {
                        close(fd);
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                cb_audit_verifier_file(v);
                *ret_bad_file = i;
                /* Lines are read into a fixed buffer: one byte over the cap
                 * is enough to call a line too long, whatever its length. */
                while (fgets(line, (int)cap, f)) {
                        size_t k = strlen(line); /* a NUL inside a line shortens it: the MAC then fails */
                        bool complete = k > 0 && line[k - 1] == '\n';
                        if (!complete && k == cap - 1) {
                                v->line++;
                                (void)fail(v, v->line, "longer than %d bytes: not a record", CB_AUDIT_LINE_MAX);
                                break;
                        }
                        if (!complete && !feof(f)) { /* fgets stopped at neither newline nor end: a NUL */
                                v->line++;
                                (void)fail(v, v->line, "holds a NUL byte: edited or corrupted");
                                break;
                        }
                        if (cb_audit_verifier_line(v, line, k - complete, complete))
                                break;
                }
                bool ioerr = ferror(f);
                fclose(f);
                if (ioerr && !v->failed) {
                        r = cb_error_set(-EIO, "%s: read error", paths[i]);
                        goto out;
                }
        }
        if (!v->failed)
                (void)cb_audit_verifier_end(v, head, required);
out:
        free(line);
        return r;
}
