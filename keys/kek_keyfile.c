/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyfile provider: wrapping key = BLAKE2b-256(key = salt || store id,
 * message = key file contents).  Parameters stored: u8 version (1), 16-byte
 * salt.  init creates the key file (32 random bytes, 0400, O_EXCL) when it
 * does not exist yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "fsutil.h"
#include "kek.h"

#define KEYFILE_V1 1
#define SALT_LEN 16

static int derive(const char *path, const unsigned char *salt, const unsigned char store_id[CB_STORE_ID_LEN],
                  cb_secbuf **ret_wrapkey) {
        cb_secbuf *file = NULL, *key;
        unsigned char k[SALT_LEN + CB_STORE_ID_LEN];
        int r;

        r = cb_keyfile_read(path, &file);
        if (r < 0)
                return r;
        key = cb_secbuf_new(CB_KEK_LEN);
        if (!key) {
                cb_secbuf_free(file);
                return -ENOMEM;
        }
        memcpy(k, salt, SALT_LEN);
        memcpy(k + SALT_LEN, store_id, CB_STORE_ID_LEN);
        crypto_generichash(cb_secbuf_data(key), CB_KEK_LEN, cb_secbuf_data(file), cb_secbuf_len(file), k, sizeof(k));
        cb_secbuf_free(file);
        *ret_wrapkey = key;
        return 0;
}

static int create_keyfile(const char *path) {
        unsigned char k[32];
        int fd, r;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
        if (fd < 0)
                return errno == EEXIST ? 0 : cb_error_set(-errno, "cannot create key file '%s': %s", path,
                                                          strerror(errno));
        randombytes_buf(k, sizeof(k));
        r = cb_pwrite_all(fd, k, sizeof(k), 0);
        sodium_memzero(k, sizeof(k));
        if (r < 0)
                r = cb_error_set(r, "cannot write key file '%s': %s", path, strerror(-r));
        if (r == 0 && fsync(fd) < 0)
                r = cb_error_set(-errno, "cannot sync key file '%s': %s", path, strerror(errno));
        close(fd);
        if (r == 0) {
                /* The directory entry too: a crash must not keep a store whose
                 * key file vanished with an unsynced directory. */
                char dir[4096];
                const char *slash = strrchr(path, '/');
                size_t n = slash ? (size_t)(slash - path) : 0;
                int dfd;

                if (n >= sizeof(dir))
                        n = sizeof(dir) - 1;
                memcpy(dir, slash ? path : ".", slash ? n : 1);
                dir[slash ? (n ? n : 1) : 1] = '\0';
                if (slash && n == 0)
                        dir[0] = '/';
                dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0 || cb_fsync_dir(dfd) < 0)
                        r = cb_error_set(-EIO, "cannot sync the directory of key file '%s'", path);
                if (dfd >= 0)
                        close(dfd);
        }
        if (r < 0)
                (void)unlink(path);
        return r;
}

int cb_keyfile_create(const char *path) {
        return create_keyfile(path);
}

static int keyfile_enroll(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN], cb_buf *params,
                          cb_secbuf **ret_wrapkey) {
        unsigned char salt[SALT_LEN];
        int r;

        if (!spec->path)
                return cb_error_set(-EINVAL, "keyfile provider needs a path (keyfile:PATH)");
        r = create_keyfile(spec->path);
        if (r < 0)
                return r;
        randombytes_buf(salt, sizeof(salt));
        r = derive(spec->path, salt, store_id, ret_wrapkey);
        if (r < 0)
                return r;
        if ((r = cb_buf_put_u8(params, KEYFILE_V1)) < 0 || (r = cb_buf_put(params, salt, sizeof(salt))) < 0) {
                cb_secbuf_free(*ret_wrapkey);
                *ret_wrapkey = NULL;
        }
        return r;
}

static int keyfile_recover(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                           const unsigned char *params, size_t params_len, cb_secbuf **ret_wrapkey) {
        cb_reader rd = cb_reader_make(params, params_len);
        const unsigned char *salt;
        uint8_t v;

        if (!spec->path)
                return cb_error_set(-EINVAL, "keyfile provider needs a path (keyfile:PATH)");
        if (cb_reader_u8(&rd, &v) < 0 || cb_reader_bytes(&rd, SALT_LEN, &salt) < 0 || cb_reader_end(&rd) < 0)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: malformed keyfile parameters");
        if (v != KEYFILE_V1)
                return cb_error_set(-EOPNOTSUPP, "header: unknown keyfile parameter version %u", v);
        return derive(spec->path, salt, store_id, ret_wrapkey);
}

const cb_unlock_provider cb_provider_keyfile = {
        .kind = CB_UNLOCK_KEYFILE,
        .name = "keyfile",
        .enroll = keyfile_enroll,
        .recover = keyfile_recover,
};
