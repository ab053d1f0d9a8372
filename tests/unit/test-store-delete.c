/* SPDX-License-Identifier: Apache-2.0 */
/* keys/: cb_store_delete — every version of a secret destroyed in one
 * compaction, the store still opening and verifying, the value gone from
 * disk, the name free for a new current version; a store edited to hold a
 * secret without a current version that is not deleted is still refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "kek.h"
#include "store.h"

static char dir[64], key[96];

static cb_store *open_store(void) {
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;

        ASSERT_OK(cb_unlock_spec_parse(key, &spec));
        ASSERT_OK(cb_store_open(dir, spec, &s));
        cb_unlock_spec_free(spec);
        return s;
}

/* Does any file of the store hold the bytes? */
static bool on_disk(const char *needle) {
        DIR *d = opendir(dir);
        struct dirent *e;
        bool found = false;

        ASSERT_TRUE(d != NULL);
        while (!found && (e = readdir(d))) {
                char p[512], buf[1 << 16];
                ssize_t n;
                int fd;

                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                if ((fd = open(p, O_RDONLY)) < 0)
                        continue;
                while (!found && (n = read(fd, buf, sizeof(buf))) > 0)
                        found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
                close(fd);
        }
        closedir(d);
        return found;
}

TEST(delete_all_versions) {
        cb_unlock_spec *spec = NULL;
        cb_store *s;
        cb_secbuf *v = NULL;
        const char **names;
        const cb_version_info *vi;
        size_t n, nv, sec = 0, ver = 0;
        uint32_t version = 0;

        snprintf(dir, sizeof(dir), "/tmp/cbdel.%d", (int)getpid());
        snprintf(key, sizeof(key), "keyfile:%s.key", dir);
        ASSERT_OK(cb_unlock_spec_parse(key, &spec));
        ASSERT_OK(cb_store_create(dir, spec));
        cb_unlock_spec_free(spec);
        s = open_store();
        ASSERT_OK(cb_store_put(s, "gone", "value-one-XYZ", 13, NULL, CB_VS_CURRENT, &version));
        ASSERT_OK(cb_store_put(s, "gone", "value-two-XYZ", 13, NULL, CB_VS_CURRENT, &version));
        ASSERT_OK(cb_store_put(s, "kept", "kept-value", 10, NULL, CB_VS_CURRENT, &version));
        ASSERT_ERR(cb_store_delete(s, "nosuch"), -ENOENT);
        ASSERT_OK(cb_store_delete(s, "gone"));
        ASSERT_OK(cb_store_delete(s, "gone")); /* again: nothing to do */
        ASSERT_ERR(cb_store_get(s, "gone", 0, false, &v, NULL, NULL), -ENOENT);
        ASSERT_ERR(cb_store_get(s, "gone", 1, true, &v, NULL, NULL), -EKEYREVOKED);
        ASSERT_OK(cb_store_names(s, &names, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(names[0], "kept");
        free(names);
        ASSERT_EQ(cb_store_count(s), 1);
        ASSERT_OK(cb_store_versions(s, "gone", &vi, &nv));
        ASSERT_EQ(nv, 2);
        ASSERT_EQ(vi[0].state, CB_VS_DESTROYED);
        ASSERT_EQ(vi[1].state, CB_VS_DESTROYED);
        ASSERT_ERR(cb_store_put(s, "gone", "x", 1, NULL, CB_VS_PENDING, &version), -EINVAL);
        cb_store_close(s);
        ASSERT_FALSE(on_disk("value-one-XYZ"));
        ASSERT_FALSE(on_disk("value-two-XYZ"));

        /* It opens, verifies, and the name takes a new current version. */
        s = open_store();
        ASSERT_OK(cb_store_verify(s, &sec, &ver));
        ASSERT_EQ(sec, 1);
        ASSERT_OK(cb_store_put(s, "gone", "value-three", 11, NULL, CB_VS_CURRENT, &version));
        ASSERT_EQ(version, 3);
        ASSERT_OK(cb_store_get(s, "gone", 0, false, &v, &version, NULL));
        ASSERT_EQ(cb_secbuf_len(v), 11);
        ASSERT_MEMEQ(cb_secbuf_data(v), "value-three", 11);
        cb_secbuf_free(v);
        cb_store_close(s);
        s = open_store();
        ASSERT_OK(cb_store_verify(s, &sec, &ver));
        ASSERT_EQ(sec, 2);
        cb_store_close(s);
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s %s.key", dir, dir);
        ASSERT_EQ(system(cmd), 0);
}
