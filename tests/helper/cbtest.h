/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny test helper.  A test file defines TEST(name) { ... } blocks; the
 * helper's main() (cbtest.c) runs them in file order, each in the same
 * process, and exits 0 (all passed), 1 (a failure) or 77 (cbtest_skip()).
 * A failed ASSERT prints file:line and the expression, then exits.
 */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*cbtest_fn)(void);
void cbtest_register(const char *name, cbtest_fn fn);
_Noreturn void cbtest_fail(const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Skip the whole test program (exit 77) because a prerequisite is missing. */
_Noreturn void cbtest_skip(const char *why, ...) __attribute__((format(printf, 1, 2)));

/* A fresh directory removed (recursively) at exit.  Never free the result. */
const char *cbtest_tmpdir(void);
/* Path join into a static ring of buffers (valid for the next 16 calls). */
const char *cbtest_path(const char *dir, const char *name);
/* Read a whole file (malloc'd, NUL-terminated), or NULL. */
unsigned char *cbtest_read_file(const char *path, size_t *ret_len);
int cbtest_write_file(const char *path, const void *p, size_t n);
/* Run argv (argv[0] a path) with stdin from in[0..in_len) (in may be NULL),
 * capture stdout/stderr into malloc'd strings (may be NULL), return the exit
 * status (or 128+signal). */
int cbtest_run(char *const argv[], const void *in, size_t in_len, char **ret_out, char **ret_err);

#define TEST(name)                                                        \
        static void test_##name(void);                                    \
        __attribute__((constructor)) static void cbtest_reg_##name(void) { \
                cbtest_register(#name, test_##name);                      \
        }                                                                 \
        static void test_##name(void)

#define ASSERT_TRUE(x) do { if (!(x)) cbtest_fail(__FILE__, __LINE__, "ASSERT_TRUE(%s)", #x); } while (0)
#define ASSERT_FALSE(x) ASSERT_TRUE(!(x))
#define ASSERT_EQ(a, b) do {                                                          \
                intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);                       \
                if (_a != _b)                                                          \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_EQ(%s, %s): %jd != %jd", #a, #b, _a, _b); \
        } while (0)
#define ASSERT_NE(a, b) do {                                                          \
                intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);                       \
                if (_a == _b)                                                          \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_NE(%s, %s): both %jd", #a, #b, _a); \
        } while (0)
/* r >= 0, printing the errno name on failure. */
#define ASSERT_OK(expr) do {                                                          \
                intmax_t _r = (intmax_t)(expr);                                        \
                if (_r < 0)                                                            \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_OK(%s): %jd (%s)", #expr, _r, strerror((int)-_r)); \
        } while (0)
#define ASSERT_ERR(expr, err) do {                                                    \
                intmax_t _r = (intmax_t)(expr);                                        \
                if (_r != (intmax_t)(err))                                             \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_ERR(%s, %s): got %jd (%s)", #expr, #err, _r, \
                                    _r < 0 ? strerror((int)-_r) : "success");          \
        } while (0)
#define ASSERT_STREQ(a, b) do {                                                       \
                const char *_a = (a), *_b = (b);                                       \
                if (!_a || !_b || strcmp(_a, _b) != 0)                                 \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_STREQ(%s, %s): \"%s\" != \"%s\"", #a, #b, \
                                    _a ? _a : "(null)", _b ? _b : "(null)");           \
        } while (0)
#define ASSERT_MEMEQ(a, b, n) do {                                                    \
                if (memcmp((a), (b), (n)) != 0)                                        \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_MEMEQ(%s, %s, %s)", #a, #b, #n); \
        } while (0)
#define ASSERT_CONTAINS(hay, needle) do {                                             \
                const char *_h = (hay), *_n = (needle);                                \
                if (!_h || !strstr(_h, _n))                                            \
                        cbtest_fail(__FILE__, __LINE__, "ASSERT_CONTAINS(%s, \"%s\"): got \"%s\"", #hay, _n, \
                                    _h ? _h : "(null)");                               \
        } while (0)
