/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's MAC chain, line parser, head checkpoint and verifier
 * (broker/audit/audit_format.c). */
#include <sodium.h>

#include <jansson.h>

#include "audit_format.h"
#include "cbtest.h"

#define NREC 12

static unsigned char master[CB_AUDIT_KEY_LEN];

typedef struct seg {
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        cb_audit_keys k;
        uint64_t seq;
        unsigned char mac[CB_AUDIT_MAC_LEN];
} seg;

/* The log under test: lines[i] is line i + 1, with its newline. */
static char *lines[64];
static size_t nlines;

static void add(seg *s, json_t *o) {
        unsigned char mac[CB_AUDIT_MAC_LEN];
        static const unsigned char zero[CB_AUDIT_MAC_LEN];
        char *canon, *line;
        size_t len;
        bool begin = json_object_get(o, "type") && strcmp(json_string_value(json_object_get(o, "type")),
                                                          "audit.begin") == 0;

        json_object_set_new(o, "seq", json_integer(begin ? 0 : (json_int_t)s->seq + 1));
        canon = json_dumps(o, JSON_COMPACT);
        ASSERT_TRUE(canon);
        ASSERT_OK(cb_audit_seal(&s->k, begin ? zero : s->mac, canon, strlen(canon), mac, &line, &len));
        ASSERT_EQ(len, strlen(line));
        ASSERT_TRUE(nlines < 64);
        lines[nlines++] = line;
        s->seq = begin ? 0 : s->seq + 1;
        memcpy(s->mac, mac, sizeof(mac));
        free(canon);
        json_decref(o);
}

static bool with_offset; /* headers carry "offset" (the writer's format since it was added) */

static void begin(seg *s, const seg *prev) {
        char hex[65];
        json_t *o = json_pack("{s:s, s:I}", "type", "audit.begin", "time", (json_int_t)1);
        size_t at = 0;

        for (size_t i = 0; i < nlines; i++)
                at += strlen(lines[i]);
        if (with_offset)
                json_object_set_new(o, "offset", json_integer((json_int_t)at));

        randombytes_buf(s->log_id, sizeof(s->log_id));
        cb_audit_segment_keys(master, s->log_id, &s->k);
        sodium_bin2hex(hex, sizeof(hex), s->log_id, sizeof(s->log_id));
        json_object_set_new(o, "log", json_string(hex));
        if (prev) {
                sodium_bin2hex(hex, sizeof(hex), prev->log_id, sizeof(prev->log_id));
                json_object_set_new(o, "prev_log", json_string(hex));
                json_object_set_new(o, "prev_seq", json_integer((json_int_t)prev->seq));
                sodium_bin2hex(hex, sizeof(hex), prev->mac, sizeof(prev->mac));
                json_object_set_new(o, "prev_mac", json_string(hex));
        }
        add(s, o);
}

static void record(seg *s, int i) {
        add(s, json_pack("{s:I, s:s, s:s, s:i}", "time", (json_int_t)i, "route", "token", "decision",
                         i % 3 ? "allow" : "deny", "status", i % 3 ? 201 : 403));
}

static void reset(void) {
        for (size_t i = 0; i < nlines; i++)
                free(lines[i]);
        nlines = 0;
}

static cb_audit_head head_of(const seg *s) {
        cb_audit_head h = { .set = true, .seq = s->seq };

        memcpy(h.log_id, s->log_id, sizeof(h.log_id));
        memcpy(h.mac, s->mac, sizeof(h.mac));
        return h;
}

/* Verify lines[] as one file; returns the bad line (0 = intact). */
static uint64_t verify(const cb_audit_head *h, bool required, char *problem, size_t plen) {
        cb_audit_verifier v;

        cb_audit_verifier_init(&v, master);
        cb_audit_verifier_file(&v);
        for (size_t i = 0; i < nlines; i++) {
                size_t n = strlen(lines[i]);
                bool complete = n && lines[i][n - 1] == '\n';
                if (cb_audit_verifier_line(&v, lines[i], n - complete, complete))
                        break;
        }
        cb_audit_verifier_end(&v, h, required);
        if (problem)
                snprintf(problem, plen, "%s", v.problem);
        cb_audit_verifier_done(&v);
        return v.failed ? v.bad_line : 0;
}

static seg build(void) {
        seg s;

        reset();
        begin(&s, NULL);
        for (int i = 1; i < NREC; i++)
                record(&s, i);
        return s;
}

TEST(intact) {
        seg s = build();
        cb_audit_head h = head_of(&s);

        ASSERT_EQ(nlines, NREC);
        ASSERT_EQ(verify(&h, true, NULL, 0), 0);
        ASSERT_EQ(verify(NULL, false, NULL, 0), 0);
}

TEST(edited_line_named) {
        char why[400];

        for (size_t line = 1; line <= NREC; line++) {
                seg s = build();
                cb_audit_head h = head_of(&s);
                char *p = strstr(lines[line - 1], "\"time\":");
                ASSERT_TRUE(p);
                p[7] = p[7] == '9' ? '8' : '9'; /* a one-digit edit */
                ASSERT_EQ(verify(&h, true, why, sizeof(why)), line);
        }
        /* An edit of the MAC itself. */
        seg s = build();
        cb_audit_head h = head_of(&s);
        char *m = strstr(lines[4], "\"mac\":\"") + 7;
        m[0] = m[0] == 'a' ? 'b' : 'a';
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), 5);
}

TEST(deleted_line_named) {
        char why[400];

        for (size_t line = 2; line < NREC; line++) {
                seg s = build();
                cb_audit_head h = head_of(&s);
                free(lines[line - 1]);
                memmove(&lines[line - 1], &lines[line], (nlines - line) * sizeof(lines[0]));
                nlines--;
                ASSERT_EQ(verify(&h, true, why, sizeof(why)), line);
                ASSERT_TRUE(strstr(why, "removed"));
        }
        /* The segment header removed: line 1 named. */
        seg s = build();
        cb_audit_head h = head_of(&s);
        free(lines[0]);
        memmove(&lines[0], &lines[1], (nlines - 1) * sizeof(lines[0]));
        nlines--;
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), 1);
}

TEST(swapped_lines_named) {
        for (size_t line = 2; line < NREC; line++) {
                seg s = build();
                cb_audit_head h = head_of(&s);
                char *t = lines[line - 1];
                lines[line - 1] = lines[line];
                lines[line] = t;
                ASSERT_EQ(verify(&h, true, NULL, 0), line);
        }
}

TEST(truncated_tail_named) {
        char why[400];
        seg s = build();
        cb_audit_head h = head_of(&s);

        /* Whole records cut: the line after the last one left is named. */
        for (int cut = 1; cut < NREC - 1; cut++) {
                free(lines[--nlines]);
                ASSERT_EQ(verify(&h, true, why, sizeof(why)), nlines + 1);
                ASSERT_TRUE(strstr(why, "truncated"));
                /* Without a head a cut tail is invisible: said, not hidden. */
                ASSERT_EQ(verify(NULL, false, NULL, 0), 0);
        }
        /* Cut inside a line. */
        s = build();
        h = head_of(&s);
        lines[nlines - 1][strlen(lines[nlines - 1]) / 2] = 0;
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), nlines);
        /* The whole segment gone while the head says it is the current one. */
        s = build();
        h = head_of(&s);
        seg other;
        reset();
        begin(&other, NULL);
        record(&other, 1);
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), 3);
        ASSERT_EQ(verify(&h, false, why, sizeof(why)), 0); /* an older file: only noted */
}

/* Three segments in one file (three daemon starts); removing the first two
 * whole is caught by the third header's offset, and a file that starts with
 * a link to one not given says so. */
TEST(leading_segments_removed) {
        seg a, b, c;
        char problem[400];

        reset();
        with_offset = true;
        begin(&a, NULL);
        record(&a, 1);
        record(&a, 2);
        begin(&b, &a);
        record(&b, 1);
        begin(&c, &b);
        record(&c, 1);
        cb_audit_head h = head_of(&c);
        ASSERT_EQ(verify(&h, true, problem, sizeof(problem)), 0);
        /* Drop lines 1..5 (segments a and b). */
        for (int i = 0; i < 5; i++)
                free(lines[i]);
        memmove(lines, lines + 5, (nlines - 5) * sizeof(lines[0]));
        nlines -= 5;
        ASSERT_EQ(verify(&h, true, problem, sizeof(problem)), 1);
        ASSERT_TRUE(strstr(problem, "records before this line were removed"));

        /* A fresh file (reopen) starts at offset 0 with a link: intact, and
         * the note names the link. */
        reset();
        begin(&b, &a);
        record(&b, 1);
        cb_audit_verifier v;
        cb_audit_verifier_init(&v, master);
        cb_audit_verifier_file(&v);
        for (size_t i = 0; i < nlines; i++)
                ASSERT_EQ(cb_audit_verifier_line(&v, lines[i], strlen(lines[i]) - 1, true), 0);
        h = head_of(&b);
        ASSERT_EQ(cb_audit_verifier_end(&v, &h, true), 0);
        ASSERT_TRUE(strstr(v.tail_note, "the older file was not given"));
        cb_audit_verifier_done(&v);

        /* Older logs (headers without offset) still verify, with a note. */
        with_offset = false;
        reset();
        begin(&a, NULL);
        record(&a, 1);
        cb_audit_verifier_init(&v, master);
        cb_audit_verifier_file(&v);
        for (size_t i = 0; i < nlines; i++)
                ASSERT_EQ(cb_audit_verifier_line(&v, lines[i], strlen(lines[i]) - 1, true), 0);
        h = head_of(&a);
        ASSERT_EQ(cb_audit_verifier_end(&v, &h, true), 0);
        ASSERT_TRUE(strstr(v.tail_note, "without \"offset\""));
        cb_audit_verifier_done(&v);
        reset();
}

/* Accessors inside free text become their keyed hash; near misses stay. */
TEST(scrub_ids) {
        seg a;
        char h[CB_AUDIT_ID_HASH_LEN + 1], want[256];

        reset();
        begin(&a, NULL);
        cb_audit_id_hash(&a.k, "cba_0123456789abcdef01234567", h);
        char *t = cb_audit_scrub_ids(&a.k, "token cba_0123456789abcdef01234567 expired; cba_0123456789ABCDEF01234567");
        ASSERT_TRUE(t);
        snprintf(want, sizeof(want), "token %s expired; %s", h, h);
        ASSERT_TRUE(strcmp(t, want) == 0);
        free(t);
        t = cb_audit_scrub_ids(&a.k, "cba_0123456789abcdef0123456 cba_0123456789abcdef012345678 cba_xyz");
        ASSERT_TRUE(t && strcmp(t, "cba_0123456789abcdef0123456 cba_0123456789abcdef012345678 cba_xyz") == 0);
        free(t);
        json_t *o = json_pack("{s:s, s:s, s:[s], s:{s:s}}", "accessor", "cba_0123456789abcdef01234567", "reason",
                              "no cba_0123456789abcdef01234567", "accessors", "cba_0123456789abcdef01234567", "n",
                              "why", "cba_0123456789abcdef01234567");
        cb_audit_hide_ids(&a.k, o);
        char *d = json_dumps(o, JSON_COMPACT);
        ASSERT_TRUE(d && !strstr(d, "cba_") && strstr(d, h));
        free(d);
        json_decref(o);
        reset();
}

/* Text that is not UTF-8 becomes a JSON string anyway: invalid bytes as \xNN. */
TEST(string_lossy) {
        static const struct { const char *in, *out; } cases[] = {
                { "/usr/bin/py", "/usr/bin/py" },
                { "/tmp/bin\xff/py", "/tmp/bin\\xff/py" },
                { "caf\xc3\xa9", "caf\xc3\xa9" },
                { "cut \xc3", "cut \\xc3" },
                { "\xc0\xaf overlong", "\\xc0\\xaf overlong" },
                { "\xed\xa0\x80 surrogate", "\\xed\\xa0\\x80 surrogate" },
                { "\xf4\x90\x80\x80 too big", "\\xf4\\x90\\x80\\x80 too big" },
                { "\xf0\x9f\x98\x80 ok", "\xf0\x9f\x98\x80 ok" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *j = cb_json_string_lossy(cases[i].in);
                ASSERT_TRUE(j);
                ASSERT_TRUE(strcmp(json_string_value(j), cases[i].out) == 0);
                json_decref(j);
        }
        json_t *j = cb_json_string_lossy(NULL);
        ASSERT_TRUE(j && strcmp(json_string_value(j), "") == 0);
        json_decref(j);
}

TEST(segments_link) {
        char why[400];
        seg a, b;

        reset();
        begin(&a, NULL);
        for (int i = 1; i < 5; i++)
                record(&a, i);
        begin(&b, &a);
        for (int i = 1; i < 4; i++)
                record(&b, i);
        cb_audit_head h = head_of(&b);
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), 0);
        /* The end of the first segment cut (line 5): named at the next
         * segment's header, now line 5. */
        free(lines[4]);
        memmove(&lines[4], &lines[5], (nlines - 5) * sizeof(lines[0]));
        nlines--;
        ASSERT_EQ(verify(&h, true, why, sizeof(why)), 5);
        ASSERT_TRUE(strstr(why, "missing"));
}

TEST(wrong_key) {
        seg s = build();
        cb_audit_head h = head_of(&s);

        master[0] ^= 1;
        ASSERT_EQ(verify(&h, true, NULL, 0), 1);
        master[0] ^= 1;
        ASSERT_EQ(verify(&h, true, NULL, 0), 0);
}

TEST(head_checkpoint) {
        seg s = build();
        cb_audit_head h = head_of(&s), got;
        char text[CB_AUDIT_HEAD_TEXT_LEN];

        cb_audit_head_encode(master, &h, text);
        ASSERT_EQ(text[CB_AUDIT_HEAD_TEXT_LEN - 1], '\n');
        ASSERT_OK(cb_audit_head_decode(master, text, sizeof(text), &got));
        ASSERT_EQ(got.seq, h.seq);
        ASSERT_TRUE(memcmp(got.mac, h.mac, sizeof(h.mac)) == 0);
        ASSERT_TRUE(memcmp(got.log_id, h.log_id, sizeof(h.log_id)) == 0);
        /* Rolled back to an older seq without the key: refused. */
        char *seq = text + 13 + 2 * CB_AUDIT_LOG_ID_LEN + 1 + 19;
        *seq = *seq == '0' ? '1' : '0';
        ASSERT_EQ(cb_audit_head_decode(master, text, sizeof(text), &got), -EBADMSG);
        ASSERT_EQ(cb_audit_head_decode(master, text, 10, &got), -EBADMSG);
}

TEST(identifier_hash) {
        seg a, b;
        char h1[CB_AUDIT_ID_HASH_LEN + 1], h2[CB_AUDIT_ID_HASH_LEN + 1], h3[CB_AUDIT_ID_HASH_LEN + 1];

        reset();
        begin(&a, NULL);
        begin(&b, &a);
        cb_audit_id_hash(&a.k, "cba_0123456789abcdef01234567", h1);
        cb_audit_id_hash(&a.k, "cba_0123456789abcdef01234567", h2);
        cb_audit_id_hash(&b.k, "cba_0123456789abcdef01234567", h3);
        ASSERT_EQ(strlen(h1), CB_AUDIT_ID_HASH_LEN);
        ASSERT_TRUE(strncmp(h1, "hk1:", 4) == 0);
        ASSERT_TRUE(strcmp(h1, h2) == 0);   /* stable within a segment: records correlate */
        ASSERT_TRUE(strcmp(h1, h3) != 0);   /* per-log key */
        ASSERT_TRUE(!strstr(h1, "0123456789abcdef"));
}

TEST(parser_rejects) {
        static const char *const bad[] = {
                "",
                "{}",
                "{\"seq\":1,\"mac\":\"00\"}",
                "{\"seq\":1,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}x",
                "{\"seq\":-1,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                "{\"seq\":0,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                "{\"seq\":1,\"seq\":2,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                "{\"seq\":1,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"mac\":"
                "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                "{\"seq\":1,\"mac\":\"000000000000000000000000000000000000000000000000000000000000000G\"}",
                "{\"seq\":1,\"mac\":\"000000000000000000000000000000000000000000000000000000000000000A\"}",
                "[1,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                "{\"type\":\"audit.begin\",\"seq\":0,\"mac\":\"0000000000000000000000000000000000000000000000000000"
                "000000000000\"}",
        };
        cb_audit_line l;
        char err[160];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ASSERT_EQ(cb_audit_line_parse(bad[i], strlen(bad[i]), &l, err, sizeof(err)), -EBADMSG);
        const char *good = "{\"seq\":7,\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";
        ASSERT_OK(cb_audit_line_parse(good, strlen(good), &l, err, sizeof(err)));
        ASSERT_EQ(l.seq, 7);
        ASSERT_TRUE(strcmp(l.canon, "{\"seq\":7}") == 0);
        cb_audit_line_done(&l);
        /* Over the cap. */
        char *big = malloc(CB_AUDIT_LINE_MAX + 2);
        memset(big, ' ', CB_AUDIT_LINE_MAX + 1);
        ASSERT_EQ(cb_audit_line_parse(big, CB_AUDIT_LINE_MAX + 1, &l, err, sizeof(err)), -EBADMSG);
        free(big);
        reset();
}

/* A crash between a record's write and its checkpoint: the head catches up
 * by exactly one record, never onto a forged or unrelated line. */
TEST(head_catch_up) {
        seg s = build(), b;
        cb_audit_head h = head_of(&s), lag = h;

        /* The head one record behind (as the last record's predecessor). */
        lag.seq = s.seq - 1;
        {
                cb_audit_line l;
                char err[160];
                ASSERT_OK(cb_audit_line_parse(lines[nlines - 2], strlen(lines[nlines - 2]) - 1, &l, err, sizeof(err)));
                memcpy(lag.mac, l.mac, sizeof(lag.mac));
                cb_audit_line_done(&l);
        }
        cb_audit_head t = lag;
        ASSERT_EQ(cb_audit_head_catch_up(master, &t, lines[nlines - 1], strlen(lines[nlines - 1]) - 1), 1);
        ASSERT_EQ(t.seq, h.seq);
        ASSERT_TRUE(memcmp(t.mac, h.mac, sizeof(h.mac)) == 0);
        /* Not past the head by two, not onto the head's own line. */
        t = lag;
        t.seq--;
        ASSERT_EQ(cb_audit_head_catch_up(master, &t, lines[nlines - 1], strlen(lines[nlines - 1]) - 1), 0);
        t = h;
        ASSERT_EQ(cb_audit_head_catch_up(master, &t, lines[nlines - 1], strlen(lines[nlines - 1]) - 1), 0);
        /* An edited line is not caught up to. */
        char *e = strdup(lines[nlines - 1]);
        strstr(e, "\"time\":")[7] ^= 1;
        t = lag;
        ASSERT_EQ(cb_audit_head_catch_up(master, &t, e, strlen(e) - 1), 0);
        free(e);
        /* A segment header linked to the head. */
        begin(&b, &s);
        t = h;
        ASSERT_EQ(cb_audit_head_catch_up(master, &t, lines[nlines - 1], strlen(lines[nlines - 1]) - 1), 1);
        ASSERT_EQ(t.seq, 0);
        ASSERT_TRUE(memcmp(t.log_id, b.log_id, sizeof(b.log_id)) == 0);
        reset();
}

/* Through the file reader: a line over the cap, a NUL byte, an intact file. */
TEST(files) {
        const char *dir = cbtest_tmpdir(), *path = cbtest_path(dir, "a.log");
        cb_audit_verifier v;
        size_t bad;
        seg s = build();
        cb_audit_head h = head_of(&s);
        FILE *f = fopen(path, "w");

        for (size_t i = 0; i < nlines; i++)
                fputs(lines[i], f);
        fclose(f);
        const char *files[] = { path };
        cb_audit_verifier_init(&v, master);
        ASSERT_OK(cb_audit_verify_files(&v, files, 1, &h, true, &bad));
        ASSERT_FALSE(v.failed);
        ASSERT_EQ(v.records, NREC);
        ASSERT_TRUE(v.tail_checked);
        cb_audit_verifier_done(&v);

        f = fopen(path, "w");
        fputs(lines[0], f);
        fputs(lines[1], f);
        for (int i = 0; i < CB_AUDIT_LINE_MAX + 10; i++)
                fputc('x', f);
        fputc('\n', f);
        fclose(f);
        cb_audit_verifier_init(&v, master);
        ASSERT_OK(cb_audit_verify_files(&v, files, 1, &h, true, &bad));
        ASSERT_TRUE(v.failed);
        ASSERT_EQ(v.bad_line, 3);
        ASSERT_TRUE(strstr(v.problem, "longer than"));
        cb_audit_verifier_done(&v);

        f = fopen(path, "w");
        fputs(lines[0], f);
        fwrite(lines[1], 1, 10, f);
        fputc(0, f);
        fputs(lines[1] + 11, f);
        fputs(lines[2], f);
        fclose(f);
        cb_audit_verifier_init(&v, master);
        ASSERT_OK(cb_audit_verify_files(&v, files, 1, &h, true, &bad));
        ASSERT_TRUE(v.failed);
        ASSERT_EQ(v.bad_line, 2);
        ASSERT_TRUE(strstr(v.problem, "NUL"));
        cb_audit_verifier_done(&v);

        const char *missing[] = { cbtest_path(dir, "missing.log") };
        cb_audit_verifier_init(&v, master);
        ASSERT_EQ(cb_audit_verify_files(&v, missing, 1, &h, true, &bad), -ENOENT);
        cb_audit_verifier_done(&v);
        reset();
}

__attribute__((constructor(200))) static void setup(void) {
        if (sodium_init() < 0)
                abort();
        randombytes_buf(master, sizeof(master));
}
