/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tamper evidence: every single-byte change to every store file is refused
 * with an integrity error naming the file; so are records moved to another
 * name, reordered, an older log replayed under a newer header, and
 * truncation.  A wrong key is told apart from tampering.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"
#include "store_format.h"

static char state[4096], keypath[4096];
static cb_unlock_spec *spec;

static void setup(void) {
        char s[4200];
        cb_store *st;

        if (spec)
                return;
        snprintf(state, sizeof(state), "%s/state", cbtest_tmpdir());
        snprintf(keypath, sizeof(keypath), "%s/key", cbtest_tmpdir());
        snprintf(s, sizeof(s), "keyfile:%s", keypath);
        ASSERT_OK(cb_unlock_spec_parse(s, &spec));
        ASSERT_OK(cb_store_create(state, spec));
        ASSERT_OK(cb_store_open(state, spec, &st));
        cb_meta m = { 0 };
        m.inject = strdup("Authorization: Bearer {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "api.example.com", 8));
        /* alpha and bravo have equal-length names so records can be swapped. */
        ASSERT_OK(cb_store_put(st, "alpha", "value-alpha-1", 13, &m, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_put(st, "bravo", "value-bravo-1", 13, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_put(st, "alpha", "value-alpha-2", 13, &m, CB_VS_PENDING, NULL));
        ASSERT_OK(cb_store_set_state(st, "alpha", 2, CB_VS_CURRENT));
        cb_meta_clear(&m);
        cb_store_close(st);
}

static const char *log_path(void) {
        static char p[4400];
        DIR *d = opendir(state);
        struct dirent *e;

        p[0] = 0;
        while ((e = readdir(d)))
                if (strncmp(e->d_name, "log-", 4) == 0)
                        snprintf(p, sizeof(p), "%s/%s", state, e->d_name);
        closedir(d);
        ASSERT_TRUE(p[0]);
        return p;
}

/* Open must fail with an integrity error whose message names `file`. */
static void expect_integrity_error(const char *file, const char *what) {
        cb_store *st = NULL;
        int r = cb_store_open(state, spec, &st);

        if (r >= 0) {
                cb_store_close(st);
                cbtest_fail(__FILE__, __LINE__, "%s: open succeeded", what);
        }
        if (r != CB_E_INTEGRITY)
                cbtest_fail(__FILE__, __LINE__, "%s: expected an integrity error, got %d: %s", what, r,
                            cb_error_last());
        if (!strstr(cb_error_last(), file))
                cbtest_fail(__FILE__, __LINE__, "%s: message does not name %s: %s", what, file, cb_error_last());
        if (!strstr(cb_error_last(), "integrity error"))
                cbtest_fail(__FILE__, __LINE__, "%s: message: %s", what, cb_error_last());
}

static void expect_opens(void) {
        cb_store *st;
        cb_secbuf *v;

        ASSERT_OK(cb_store_open(state, spec, &st));
        ASSERT_OK(cb_store_verify(st, NULL, NULL));
        ASSERT_OK(cb_store_get(st, "alpha", 0, false, &v, NULL, NULL));
        ASSERT_MEMEQ(cb_secbuf_data(v), "value-alpha-2", 13);
        cb_secbuf_free(v);
        cb_store_close(st);
}

static void flip_every_byte(const char *path, const char *label) {
        size_t len;
        unsigned char *orig = cbtest_read_file(path, &len);
        const unsigned char masks[] = { 0x01, 0x80, 0xff };

        ASSERT_TRUE(orig && len > 0);
        for (size_t i = 0; i < len; i++) {
                for (size_t m = 0; m < sizeof(masks); m++) {
                        char what[128];
                        orig[i] ^= masks[m];
                        ASSERT_OK(cbtest_write_file(path, orig, len));
                        snprintf(what, sizeof(what), "%s byte %zu ^ 0x%02x", label, i, masks[m]);
                        expect_integrity_error(label, what);
                        orig[i] ^= masks[m];
                }
        }
        ASSERT_OK(cbtest_write_file(path, orig, len));
        free(orig);
        expect_opens();
        printf("     %s: %zu bytes x %zu flips refused\n", label, len, sizeof(masks));
}

TEST(every_byte_of_header) {
        setup();
        expect_opens();
        flip_every_byte(cbtest_path(state, "header"), "header");
}

TEST(every_byte_of_log) {
        setup();
        flip_every_byte(log_path(), "log-");
}

TEST(truncation_refused) {
        const char *lp;
        size_t len, hlen;
        unsigned char *orig, *horig;

        setup();
        lp = log_path();
        orig = cbtest_read_file(lp, &len);
        for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 37)) {
                ASSERT_OK(truncate(lp, (off_t)cut));
                expect_integrity_error("log-", "truncated log");
        }
        ASSERT_OK(cbtest_write_file(lp, orig, len));
        horig = cbtest_read_file(cbtest_path(state, "header"), &hlen);
        for (size_t cut = 0; cut < hlen; cut++) {
                ASSERT_OK(truncate(cbtest_path(state, "header"), (off_t)cut));
                expect_integrity_error("header", "truncated header");
        }
        ASSERT_OK(cbtest_write_file(cbtest_path(state, "header"), horig, hlen));
        /* Log file removed altogether. */
        ASSERT_OK(unlink(lp));
        expect_integrity_error("log-", "missing log");
        ASSERT_OK(cbtest_write_file(lp, orig, len));
        ASSERT_OK(chmod(lp, 0600));
        free(orig);
        free(horig);
        expect_opens();
}

/* Find the offset of the n-th occurrence of the framed record for name. */
static size_t record_offset(const unsigned char *p, size_t len, const char *name, int nth) {
        size_t off = 0;

        while (off + 4 <= len) {
                uint32_t rl = cb_get_u32_at(p + off);
                cb_record rec;

                ASSERT_OK(cb_record_parse(p + off + 4, rl, &rec));
                if (rec.name_len == strlen(name) && memcmp(rec.name, name, rec.name_len) == 0 && nth-- == 0)
                        return off;
                off += 4 + rl + CB_MAC_LEN;
        }
        cbtest_fail(__FILE__, __LINE__, "record for %s not found", name);
}

TEST(record_moved_to_another_name) {
        const char *lp;
        size_t len;
        unsigned char *orig, *p;

        setup();
        lp = log_path();
        orig = cbtest_read_file(lp, &len);
        p = malloc(len);
        /* Rename alpha's first record to bravo in place (same length). */
        memcpy(p, orig, len);
        size_t off = record_offset(p, len, "alpha", 0);
        unsigned char *n = memmem(p + off, 64, "alpha", 5);
        ASSERT_TRUE(n != NULL);
        memcpy(n, "bravo", 5);
        ASSERT_OK(cbtest_write_file(lp, p, len));
        expect_integrity_error("log-", "record renamed");
        /* Swap the name fields of alpha's and bravo's first records. */
        memcpy(p, orig, len);
        size_t oa = record_offset(p, len, "alpha", 0), ob = record_offset(p, len, "bravo", 0);
        memcpy(memmem(p + oa, 64, "alpha", 5), "bravo", 5);
        memcpy(memmem(p + ob, 64, "bravo", 5), "alpha", 5);
        ASSERT_OK(cbtest_write_file(lp, p, len));
        expect_integrity_error("log-", "names swapped");
        ASSERT_OK(cbtest_write_file(lp, orig, len));
        free(p);
        free(orig);
        expect_opens();
}

TEST(records_reordered) {
        const char *lp;
        size_t len;
        unsigned char *orig, *p;

        setup();
        lp = log_path();
        orig = cbtest_read_file(lp, &len);
        p = malloc(len);
        /* Swap the first two framed records. */
        uint32_t l0 = cb_get_u32_at(orig), l1 = cb_get_u32_at(orig + 4 + l0 + CB_MAC_LEN);
        size_t f0 = 4 + l0 + CB_MAC_LEN, f1 = 4 + l1 + CB_MAC_LEN;
        memcpy(p, orig + f0, f1);
        memcpy(p + f1, orig, f0);
        memcpy(p + f0 + f1, orig + f0 + f1, len - f0 - f1);
        ASSERT_OK(cbtest_write_file(lp, p, len));
        expect_integrity_error("log-", "records swapped");
        /* Drop a record from the middle. */
        memcpy(p, orig, f0);
        memcpy(p + f0, orig + f0 + f1, len - f0 - f1);
        ASSERT_OK(cbtest_write_file(lp, p, len - f1));
        expect_integrity_error("log-", "record removed");
        /* Duplicate a record (replay) at the end. */
        unsigned char *q = malloc(len + f0);
        memcpy(q, orig, len);
        memcpy(q + len, orig, f0);
        ASSERT_OK(cbtest_write_file(lp, q, len + f0));
        expect_opens(); /* a tail that does not chain is ignored as torn... */
        ASSERT_OK(cbtest_write_file(lp, orig, len));
        free(q);
        free(p);
        free(orig);
        expect_opens();
}

TEST(old_copy_replayed) {
        const char *lp;
        size_t llen_old, hlen_old;
        unsigned char *log_old, *hdr_old;
        cb_store *st;
        cb_secbuf *v;
        uint32_t ver;

        setup();
        lp = log_path();
        log_old = cbtest_read_file(lp, &llen_old);
        hdr_old = cbtest_read_file(cbtest_path(state, "header"), &hlen_old);
        ASSERT_OK(cb_store_open(state, spec, &st));
        ASSERT_OK(cb_store_put(st, "alpha", "value-alpha-3", 13, NULL, CB_VS_CURRENT, &ver));
        ASSERT_OK(cb_store_put(st, "bravo", "value-bravo-2", 13, NULL, CB_VS_CURRENT, NULL));
        cb_store_close(st);
        size_t llen_new, hlen_new;
        unsigned char *log_new = cbtest_read_file(lp, &llen_new);
        unsigned char *hdr_new = cbtest_read_file(cbtest_path(state, "header"), &hlen_new);

        /* The older log under the newer header: refused. */
        ASSERT_OK(cbtest_write_file(lp, log_old, llen_old));
        expect_integrity_error("log-", "old log replayed");
        /* An older log with a newer record's bytes spliced over its end. */
        ASSERT_OK(cbtest_write_file(lp, log_new, llen_old));
        expect_integrity_error("log-", "log cut back to an old length");
        ASSERT_OK(cbtest_write_file(lp, log_new, llen_new));

        /* The older header (two commits behind) over the newer log: refused —
         * otherwise an old header plus a cut log would roll the store back
         * to a point of the attacker's choice. */
        ASSERT_OK(cbtest_write_file(cbtest_path(state, "header"), hdr_old, hlen_old));
        expect_integrity_error("log-", "old header over the newer log");
        {
                uint32_t l = cb_get_u32_at(log_new + llen_old);
                size_t cut = llen_old + 4 + l + CB_MAC_LEN; /* keep one of the two newer records */
                /* Cut to one commit past the old header: byte for byte what a
                 * crash before the header rename leaves, so it opens (rolled
                 * forward).  This one-commit window is a whole-store rollback,
                 * which only a TPM counter can catch (README). */
                ASSERT_OK(cbtest_write_file(lp, log_new, cut));
                ASSERT_OK(cb_store_open(state, spec, &st));
                cb_store_close(st);
                ASSERT_OK(cbtest_write_file(lp, log_new, llen_new));
        }
        ASSERT_OK(cbtest_write_file(cbtest_path(state, "header"), hdr_new, hlen_new));

        /* A header exactly one commit behind is what a crash before the
         * header rename leaves: that record is rolled forward, nothing lost. */
        ASSERT_OK(cb_store_open(state, spec, &st));
        size_t hlen_mid;
        unsigned char *hdr_mid = cbtest_read_file(cbtest_path(state, "header"), &hlen_mid);
        ASSERT_OK(cb_store_put(st, "bravo", "value-bravo-3", 13, NULL, CB_VS_CURRENT, NULL));
        cb_store_close(st);
        ASSERT_OK(cbtest_write_file(cbtest_path(state, "header"), hdr_mid, hlen_mid));
        ASSERT_OK(cb_store_open(state, spec, &st));
        ASSERT_OK(cb_store_get(st, "bravo", 0, false, &v, NULL, NULL));
        ASSERT_MEMEQ(cb_secbuf_data(v), "value-bravo-3", 13);
        cb_secbuf_free(v);
        ASSERT_OK(cb_store_get(st, "alpha", 0, false, &v, NULL, NULL));
        ASSERT_MEMEQ(cb_secbuf_data(v), "value-alpha-3", 13);
        cb_secbuf_free(v);
        cb_store_close(st);
        free(hdr_mid);

        /* A replayed older version record appended as if newer: does not chain. */
        free(log_old);
        free(hdr_old);
        free(log_new);
        free(hdr_new);
        ASSERT_OK(cb_store_open(state, spec, &st));
        ASSERT_OK(cb_store_verify(st, NULL, NULL));
        cb_store_close(st);
}

TEST(wrong_key_is_not_tampering) {
        char s[4400], other[4200];
        cb_unlock_spec *bad;
        cb_store *st;

        setup();
        snprintf(other, sizeof(other), "%s/otherkey", cbtest_tmpdir());
        unsigned char k[32];
        memset(k, 7, sizeof(k));
        ASSERT_OK(cbtest_write_file(other, k, sizeof(k)));
        ASSERT_OK(chmod(other, 0400));
        snprintf(s, sizeof(s), "keyfile:%s", other);
        ASSERT_OK(cb_unlock_spec_parse(s, &bad));
        ASSERT_ERR(cb_store_open(state, bad, &st), CB_E_BADKEY);
        ASSERT_CONTAINS(cb_error_last(), "wrong key");
        cb_unlock_spec_free(bad);
        /* A provider the store was not created with: its own message. */
        ASSERT_OK(cb_unlock_spec_parse("passphrase:/dev/null", &bad));
        ASSERT_ERR(cb_store_open(state, bad, &st), -ENOKEY);
        ASSERT_CONTAINS(cb_error_last(), "no 'passphrase' unlock slot");
        cb_unlock_spec_free(bad);
}
