/* SPDX-License-Identifier: Apache-2.0 */
/* Leak marks as store records (keys/store_leak.c) and the freshness check:
 * a leaked version is never served or made current, its value never
 * stored again (any name), across reopen and compaction; a header changed
 * under an open handle makes it refuse reads. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"

static cb_store *fresh(const char *sub, cb_unlock_spec **ret_spec, char **ret_state) {
        static char dirs[4][4096], states[4][4096];
        static int k;
        char *dir = dirs[k % 4], *state = states[k % 4], spec_str[4200];
        cb_unlock_spec *spec;
        cb_store *s;

        k++;
        snprintf(dir, 4096, "%s/%s", cbtest_tmpdir(), sub);
        ASSERT_OK(mkdir(dir, 0700));
        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", cbtest_path(dir, "key"));
        ASSERT_OK(cb_unlock_spec_parse(spec_str, &spec));
        snprintf(state, 4096, "%s", cbtest_path(dir, "state"));
        ASSERT_OK(cb_store_create(state, spec));
        ASSERT_OK(cb_store_open(state, spec, &s));
        *ret_spec = spec;
        *ret_state = state;
        return s;
}

TEST(mark_refuses_serving_and_storing) {
        cb_unlock_spec *spec;
        char *state;
        cb_store *s = fresh("mark", &spec, &state);
        const cb_version_info *vi;
        cb_secbuf *v = NULL;
        uint32_t ver = 0;
        size_t n;

        ASSERT_OK(cb_store_put(s, "api", "old-value", 9, NULL, CB_VS_CURRENT, NULL));
        /* Legitimate: served, and a second put of a new value works. */
        ASSERT_OK(cb_store_get(s, "api", 0, false, &v, NULL, NULL));
        cb_secbuf_free(v);
        uint64_t gen = cb_store_generation(s);
        ASSERT_OK(cb_store_mark_leaked(s, "api", 0, &ver));
        ASSERT_EQ(ver, 1u);
        ASSERT_EQ(cb_store_generation(s), gen + 1); /* counted like any write */
        ASSERT_OK(cb_store_mark_leaked(s, "api", 1, NULL)); /* idempotent, no new record */
        ASSERT_EQ(cb_store_generation(s), gen + 1);
        ASSERT_ERR(cb_store_get(s, "api", 0, false, &v, NULL, NULL), -EKEYREVOKED);
        ASSERT_ERR(cb_store_get(s, "api", 1, true, &v, NULL, NULL), -EKEYREVOKED);
        ASSERT_CONTAINS(cb_error_last(), "leaked");
        ASSERT_OK(cb_store_get_ex(s, "api", 1, true, CB_STORE_LEAKED_OK, &v, NULL, NULL)); /* the scanner */
        cb_secbuf_free(v);
        /* The value is refused under every name; the message never quotes it. */
        ASSERT_ERR(cb_store_put(s, "api", "old-value", 9, NULL, CB_VS_CURRENT, NULL), -EKEYREJECTED);
        ASSERT_FALSE(strstr(cb_error_last(), "old-value"));
        ASSERT_ERR(cb_store_put(s, "other", "old-value", 9, NULL, CB_VS_CURRENT, NULL), -EKEYREJECTED);
        ASSERT_TRUE(cb_store_value_leaked(s, "old-value", 9));
        ASSERT_FALSE(cb_store_value_leaked(s, "old-valu", 8));
        /* A new value; the leaked one is never made current again. */
        ASSERT_OK(cb_store_put(s, "api", "new-value", 9, NULL, CB_VS_CURRENT, NULL));
        ASSERT_ERR(cb_store_set_state(s, "api", 1, CB_VS_CURRENT), -EKEYREVOKED);
        ASSERT_OK(cb_store_versions(s, "api", &vi, &n));
        ASSERT_EQ(n, 2u);
        ASSERT_TRUE(vi[0].leaked);
        ASSERT_FALSE(vi[1].leaked);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(marks_survive_reopen_and_compaction) {
        cb_unlock_spec *spec;
        char *state;
        cb_store *s = fresh("compact", &spec, &state);
        cb_secbuf *v = NULL;

        ASSERT_OK(cb_store_put(s, "api", "leaky", 5, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_mark_leaked(s, "api", 0, NULL));
        ASSERT_OK(cb_store_put(s, "api", "fresh", 5, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_destroy(s, "api", 1)); /* compaction: the mark must be carried */
        ASSERT_OK(cb_store_compact(s));
        cb_store_close(s);
        ASSERT_OK(cb_store_open(state, spec, &s));
        ASSERT_EQ(cb_store_leaked_count(s), 1u);
        ASSERT_ERR(cb_store_put(s, "api", "leaky", 5, NULL, CB_VS_CURRENT, NULL), -EKEYREJECTED);
        ASSERT_ERR(cb_store_put(s, "new", "leaky", 5, NULL, CB_VS_CURRENT, NULL), -EKEYREJECTED);
        ASSERT_OK(cb_store_mark_leaked(s, "api", 1, NULL)); /* marked already: the tombstone keeps it */
        ASSERT_OK(cb_store_put(s, "api", "third", 5, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_destroy(s, "api", 2));
        ASSERT_ERR(cb_store_mark_leaked(s, "api", 2, NULL), -EKEYREVOKED); /* destroyed: nothing to hash */
        ASSERT_OK(cb_store_get(s, "api", 0, false, &v, NULL, NULL));
        cb_secbuf_free(v);
        size_t ns = 0, nv = 0;
        ASSERT_OK(cb_store_verify(s, &ns, &nv));
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(changed_underneath_refuses_reads) {
        cb_unlock_spec *spec;
        char *state;
        cb_store *a = fresh("fresh", &spec, &state), *b;
        cb_secbuf *v = NULL;

        ASSERT_OK(cb_store_put(a, "x", "1", 1, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_open(state, spec, &b));
        ASSERT_OK(cb_store_get(b, "x", 0, false, &v, NULL, NULL)); /* legitimate: nothing changed */
        cb_secbuf_free(v);
        v = NULL;
        ASSERT_OK(cb_store_mark_leaked(a, "x", 0, NULL)); /* another writer */
        ASSERT_ERR(cb_store_get(b, "x", 0, false, &v, NULL, NULL), CB_E_ROLLBACK);
        ASSERT_CONTAINS(cb_error_last(), "changed by another process");
        ASSERT_ERR(cb_store_check_fresh(b), CB_E_ROLLBACK); /* and it stays refused */
        ASSERT_OK(cb_store_check_fresh(a)); /* the writer's own commits do not count */
        /* A touch that leaves the bytes alone is not a change. */
        ASSERT_OK(utimensat(AT_FDCWD, cbtest_path(state, "header"), NULL, 0));
        ASSERT_OK(cb_store_check_fresh(a));
        cb_store_close(a);
        cb_store_close(b);
        cb_unlock_spec_free(spec);
}
