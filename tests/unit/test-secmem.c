/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "cbtest.h"
#include "secmem.h"
#include "wipe_heap.h"

/* sodium_malloc needs the page size sodium_init() records; without it
 * cb_secbuf_new aborts. */
static void setup(void) {
        if (sodium_init() < 0)
                cbtest_skip("sodium_init failed");
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char v) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != v)
                        return false;
        return true;
}

TEST(new_zero_filled) {
        static const size_t lens[] = { 1, 15, 16, 17, 4095, 4096, 4097, 100000 };

        setup();
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                cb_secbuf *s = cb_secbuf_new(lens[i]);

                ASSERT_TRUE(s);
                ASSERT_TRUE(cb_secbuf_data(s));
                ASSERT_EQ(cb_secbuf_len(s), lens[i]);
                /* sodium_malloc fills with 0xdb, so zeros here are ours. */
                ASSERT_TRUE(all_bytes(cb_secbuf_data(s), lens[i], 0));
                /* The whole length is writable (ASan/guard page otherwise). */
                memset(cb_secbuf_data(s), 0x5a, lens[i]);
                ASSERT_TRUE(all_bytes(cb_secbuf_data(s), lens[i], 0x5a));
                cb_secbuf_free(s);
        }
}

TEST(len_zero) {
        cb_secbuf *s, *d;

        setup();
        s = cb_secbuf_new(0);
        ASSERT_TRUE(s);
        ASSERT_EQ(cb_secbuf_len(s), 0);
        cb_secbuf_truncate(s, 0);
        ASSERT_EQ(cb_secbuf_len(s), 0);
        d = cb_secbuf_dup("x", 0);
        ASSERT_TRUE(d);
        ASSERT_EQ(cb_secbuf_len(d), 0);
        ASSERT_EQ(cb_memcmp_ct(cb_secbuf_data(s), cb_secbuf_data(d), 0), 0);
        cb_secbuf_free(d);
        cb_secbuf_free(s);
}

TEST(new_too_large) {
        setup();
        /* Refused up front (NULL), not an abort or a huge mapping. */
        ASSERT_TRUE(cb_secbuf_new(SIZE_MAX) == NULL);
        ASSERT_TRUE(cb_secbuf_new(SIZE_MAX - 4096) == NULL);
}

TEST(dup_copies) {
        unsigned char src[300];
        cb_secbuf *s;

        setup();
        for (size_t i = 0; i < sizeof(src); i++)
                src[i] = (unsigned char)(i * 7 + 1);
        s = cb_secbuf_dup(src, sizeof(src));
        ASSERT_TRUE(s);
        ASSERT_EQ(cb_secbuf_len(s), sizeof(src));
        ASSERT_TRUE(cb_secbuf_data(s) != src);
        ASSERT_MEMEQ(cb_secbuf_data(s), src, sizeof(src));
        /* A copy, not an alias: later changes to either side stay there. */
        memset(src, 0, sizeof(src));
        ASSERT_EQ(cb_secbuf_data(s)[0], 1);
        ASSERT_EQ(cb_secbuf_data(s)[299], (unsigned char)(299 * 7 + 1));
        cb_secbuf_data(s)[1] = 0xEE;
        ASSERT_EQ(src[1], 0);
        cb_secbuf_free(s);
}

TEST(truncate_wipes_tail) {
        cb_secbuf *s;
        unsigned char *p;

        setup();
        s = cb_secbuf_new(64);
        ASSERT_TRUE(s);
        p = cb_secbuf_data(s);
        memset(p, 0xAA, 64);

        /* Growing is not what truncate does: no change. */
        cb_secbuf_truncate(s, 100);
        ASSERT_EQ(cb_secbuf_len(s), 64);
        cb_secbuf_truncate(s, 64);
        ASSERT_EQ(cb_secbuf_len(s), 64);
        ASSERT_TRUE(all_bytes(p, 64, 0xAA));

        cb_secbuf_truncate(s, 10);
        ASSERT_EQ(cb_secbuf_len(s), 10);
        ASSERT_TRUE(cb_secbuf_data(s) == p);
        ASSERT_TRUE(all_bytes(p, 10, 0xAA));
        /* The bytes past the new length are still our allocation; they must
         * no longer hold the old contents. */
        ASSERT_TRUE(all_bytes(p + 10, 54, 0));

        cb_secbuf_truncate(s, 0);
        ASSERT_EQ(cb_secbuf_len(s), 0);
        ASSERT_TRUE(all_bytes(p, 64, 0));
        cb_secbuf_free(s);
}

TEST(free_null_and_freep) {
        cb_secbuf *s;

        setup();
        cb_secbuf_free(NULL);
        s = cb_secbuf_new(8);
        ASSERT_TRUE(s);
        cb_secbuf_freep(&s);
        ASSERT_TRUE(s == NULL);
        cb_secbuf_freep(&s); /* idempotent */
}

/* The point of cb_secbuf over malloc: an overrun hits a guard page instead
 * of a neighbouring secret.  Run the overrun in a child and expect it to die. */
TEST(guard_page_after_data) {
        /* Pooled sizes (up to 4096) and not (5000); 17 and 300 sit inside a
         * pool size, so only placing the data at the block's end keeps the
         * guard right after it; "reused" takes a block back from the pool. */
        static const size_t lens[] = { 1, 17, 32, 300, 4096, 5000, 17 };

        setup();
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                int status;
                pid_t pid;

                fflush(NULL);
                pid = fork();
                ASSERT_TRUE(pid >= 0);
                if (pid == 0) {
                        struct rlimit no_core = { 0, 0 };
                        if (i == sizeof(lens) / sizeof(lens[0]) - 1)
                                cb_secbuf_free(cb_secbuf_new(64)); /* a returned 64-byte block */
                        cb_secbuf *s = cb_secbuf_new(lens[i]);
                        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                        (void)setrlimit(RLIMIT_CORE, &no_core);
                        if (null >= 0)
                                (void)dup2(null, 2); /* sanitizer SEGV report */
                        if (!s)
                                _exit(3);
                        ((volatile unsigned char *)cb_secbuf_data(s))[lens[i]] = 1;
                        _exit(42);
                }
                ASSERT_EQ(waitpid(pid, &status, 0), pid);
                if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
                        cbtest_fail(__FILE__, __LINE__, "cb_secbuf_new(%zu) failed in the child", lens[i]);
                if (WIFEXITED(status) && WEXITSTATUS(status) == 42)
                        cbtest_fail(__FILE__, __LINE__, "writing one byte past a %zu-byte secbuf did not fault",
                                    lens[i]);
        }
}

TEST(pooled_blocks_come_back_zeroed) {
        setup();
        for (int round = 0; round < 200; round++) {
                size_t len = (size_t)(round * 37) % 4096 + 1;
                cb_secbuf *s = cb_secbuf_new(len);

                ASSERT_TRUE(s != NULL);
                ASSERT_TRUE(all_bytes(cb_secbuf_data(s), len, 0));
                memset(cb_secbuf_data(s), 0xA5, len);
                cb_secbuf_free(s);
        }
}

TEST(wipe) {
        unsigned char b[33];

        memset(b, 0x77, sizeof(b));
        cb_wipe(b + 1, 31);
        ASSERT_EQ(b[0], 0x77);
        ASSERT_TRUE(all_bytes(b + 1, 31, 0));
        ASSERT_EQ(b[32], 0x77);
        cb_wipe(b, 0);
        ASSERT_EQ(b[0], 0x77);
}

TEST(memeq_ct) {
        unsigned char a[64], b[64];

        setup();
        randombytes_buf(a, sizeof(a));
        memcpy(b, a, sizeof(b));
        ASSERT_EQ(cb_memcmp_ct(a, b, sizeof(a)), 0);
        ASSERT_EQ(cb_memcmp_ct(a, a, sizeof(a)), 0);
        ASSERT_EQ(cb_memcmp_ct(a, b, 0), 0);
        /* Any single differing byte, wherever it is, and every bit of it. */
        for (size_t i = 0; i < sizeof(a); i++)
                for (int bit = 0; bit < 8; bit++) {
                        b[i] ^= (unsigned char)(1u << bit);
                        ASSERT_NE(cb_memcmp_ct(a, b, sizeof(a)), 0);
                        ASSERT_NE(cb_memcmp_ct(b, a, sizeof(a)), 0);
                        /* A difference outside the compared length is ignored. */
                        ASSERT_EQ(cb_memcmp_ct(a, b, i), 0);
                        b[i] ^= (unsigned char)(1u << bit);
                }
        ASSERT_EQ(cb_memcmp_ct(a, b, sizeof(a)), 0);
}

/* The wipe-on-free hooks (jansson, libcurl, OpenSSL): realloc keeps the
 * contents when it moves a block, keeps a block that fits, never answers
 * NULL after freeing; strdup copies.  (That freed blocks are wiped is
 * checked on the daemon's memory by test-proxy.) */
TEST(wipe_heap_hooks) {
        unsigned char *p, *q;
        char *d;

        setup();
        p = cb_wipe_realloc(NULL, 100);
        ASSERT_TRUE(p != NULL);
        for (int i = 0; i < 100; i++)
                p[i] = (unsigned char)i;
        q = cb_wipe_realloc(p, 65536);
        ASSERT_TRUE(q != NULL);
        for (int i = 0; i < 100; i++)
                ASSERT_EQ(q[i], (unsigned char)i);
        p = cb_wipe_realloc(q, 10);
        ASSERT_TRUE(p == q);
        ASSERT_EQ(p[9], 9);
        q = cb_wipe_realloc(p, 0);
        ASSERT_TRUE(q != NULL);
        cb_wipe_free(q);
        cb_wipe_free(NULL);
        d = cb_wipe_strdup("cbt_example");
        ASSERT_TRUE(d != NULL);
        ASSERT_STREQ(d, "cbt_example");
        cb_wipe_free(d);
}
