/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed provisioning in the daemon: the admin routes (pubkey, key
 * rotation and retirement, import) and --provision-dir.  The work is in
 * keys/provision*.c; this file speaks HTTP/JSON and files.  Every handler
 * runs under cbd.lock (admin.sock handlers, or main.c's signal loop).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "audit_format.h" /* cb_json_string_lossy */
#include "daemon.h"
#include "scan.h"
#include "error.h"
#include "provision.h"

#define SEAL_SUFFIX ".cbseal"
#define FILE_MAX (CB_PROV_TEXT_MAX + 64) /* a blob plus a little whitespace */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        va_list ap;

        fputs("credbrokerd: provision: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static const char *key_state(enum cb_version_state s) {
        return s == CB_VS_CURRENT ? "current" : s == CB_VS_DESTROYED ? "retired" : "accepted";
}

static json_t *key_json(const cb_prov_key_info *k) {
        char id[CB_PROV_KEY_ID_HEX], pk[CB_PROV_PK_TEXT_LEN];
        json_t *o = json_pack("{s:I, s:s, s:I}", "version", (json_int_t)k->version, "state", key_state(k->state),
                              "created", (json_int_t)k->created);

        if (o && k->known) {
                cb_prov_key_id_hex(k->key_id, id);
                cb_prov_pk_format(k->pk, pk);
                json_object_set_new(o, "key_id", json_string(id));
                json_object_set_new(o, "public_key", json_string(pk));
        }
        return o;
}

static int route_pubkey(request *rq) {
        cb_prov_key_info k;
        int r;

        rq->route = "admin.pubkey";
        r = cb_prov_keys_current(cbd.store, &k);
        if (r == -ENOENT) /* a store made before provisioning existed, written to since start */
                r = cb_prov_keys_ensure(cbd.store, NULL) < 0 ? -EIO : cb_prov_keys_current(cbd.store, &k);
        if (r < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        return reply_json(rq, 200, key_json(&k), false);
}

static int route_pubkeys(request *rq) {
        cb_prov_key_info *keys;
        json_t *arr;
        size_t n;

        rq->route = "admin.pubkeys";
        if (cb_prov_keys_list(cbd.store, &keys, &n) < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, key_json(&keys[i]));
        free(keys);
        return reply_json(rq, 200, json_pack("{s:o}", "keys", arr), false);
}

static int route_rotate(request *rq) {
        cb_prov_key_info k;

        rq->route = "admin.pubkey.rotate";
        if (rq->body_len)
                return reply_error(rq, 400, "bad_request", "rotate takes no body");
        if (cb_prov_keys_rotate(cbd.store, &k) < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        return reply_json(rq, 201, key_json(&k), false);
}

static int route_retire(request *rq) {
        static const char *const fields[] = { "key_id", NULL };
        unsigned char id[CB_PROV_KEY_ID_LEN];
        const char *hex;
        json_t *o;
        int r, ret;

        rq->route = "admin.pubkey.retire";
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        hex = json_string_value(json_object_get(o, "key_id"));
        if (cb_prov_key_id_parse(hex, id) < 0) {
                ret = reply_error(rq, 400, "bad_request", "'key_id': %s", cb_error_last());
                goto out;
        }
        r = cb_prov_keys_retire(cbd.store, id);
        if (r < 0)
                ret = reply_error(rq, r == -ENOENT ? 404 : r == -EBUSY ? 409 : 500,
                                  r == -ENOENT ? "not_found" : r == -EBUSY ? "conflict" : "internal", "%s",
                                  cb_error_last());
        else
                ret = reply_json(rq, 200, json_pack("{s:s}", "retired", hex), false);
out:
        json_decref(o);
        return ret;
}

static unsigned refusal_status(enum cb_prov_refusal why) {
        switch (why) {
        case CB_PROV_REPLAY: return 409;
        case CB_PROV_STORE: return 500;
        default: return 400;
        }
}

/* POST /v1/admin/import {"blob", "expect_name"?, "dry_run"?}: one blob per
 * request (a blob is at most ~107 KiB, under CB_BODY_MAX). */
static int route_import(request *rq) {
        static const char *const fields[] = { "blob", "expect_name", "dry_run", NULL };
        cb_prov_result res;
        const char *blob, *expect = NULL;
        json_t *o, *e, *dr;
        bool dry = false;
        int r, ret;

        rq->route = "admin.import";
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        blob = json_string_value(json_object_get(o, "blob"));
        e = json_object_get(o, "expect_name");
        dr = json_object_get(o, "dry_run");
        if (!blob || (e && (!json_is_string(e) || cb_name_check(json_string_value(e)) < 0)) ||
            (dr && !json_is_boolean(dr))) {
                ret = reply_error(rq, 400, "bad_request",
                                  "want {\"blob\": \"cbseal1...\", \"expect_name\": NAME (optional), "
                                  "\"dry_run\": BOOL (optional)}");
                goto out;
        }
        expect = e ? json_string_value(e) : NULL;
        dry = dr && json_is_true(dr);
        r = cb_prov_import(cbd.store, blob, json_string_length(json_object_get(o, "blob")), expect,
                           (uint64_t)time(NULL), dry, &res);
        if (res.name[0])
                snprintf(rq->secret, sizeof(rq->secret), "%s", res.name);
        if (r < 0) {
                ret = reply_error(rq, refusal_status(res.refusal), cb_prov_refusal_code(res.refusal), "%s",
                                  cb_error_last());
                goto out;
        }
        if (!dry)
                scanner_rebuild(); /* a new live value for the leak scanner */
        json_t *a = json_pack("{s:s, s:s, s:I, s:b}", "name", res.name, "key_id", res.key_id, "created",
                              (json_int_t)res.created, "dry_run", dry);
        if (a && !dry)
                json_object_set_new(a, "version", json_integer(res.version));
        ret = reply_json(rq, dry ? 200 : 201, a, false);
out:
        json_decref(o);
        return ret;
}

int api_provision(request *rq) {
        bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;

        if (strcmp(rq->url, "/v1/admin/pubkey") == 0)
                return get ? route_pubkey(rq) : reply_error(rq, 405, "method_not_allowed", "use GET");
        if (strcmp(rq->url, "/v1/admin/pubkeys") == 0)
                return get ? route_pubkeys(rq) : reply_error(rq, 405, "method_not_allowed", "use GET");
        if (strcmp(rq->url, "/v1/admin/pubkey/rotate") == 0)
                return post ? route_rotate(rq) : reply_error(rq, 405, "method_not_allowed", "use POST");
        if (strcmp(rq->url, "/v1/admin/pubkey/retire") == 0)
                return post ? route_retire(rq) : reply_error(rq, 405, "method_not_allowed", "use POST");
        if (strcmp(rq->url, "/v1/admin/import") == 0)
                return post ? route_import(rq) : reply_error(rq, 405, "method_not_allowed", "use POST");
        return reply_error(rq, 404, "not_found", "no route %.64s", rq->url);
}

bool is_provision_route(const char *url) {
        return strcmp(url, "/v1/admin/import") == 0 || strncmp(url, "/v1/admin/pubkey", 16) == 0;
}

int provision_start(void) {
        bool created;
        cb_prov_key_info k;
        char id[CB_PROV_KEY_ID_HEX];

        if (cb_prov_keys_ensure(cbd.store, &created) < 0 || cb_prov_keys_current(cbd.store, &k) < 0)
                return -1;
        cb_prov_key_id_hex(k.key_id, id);
        if (created)
                say("created the provisioning keypair %s (this store had none)", id);
        return 0;
}

/* The directory must be a real directory owned by root or us and writable
 * by nobody else: whoever can write it can make us import. */
static int check_dir(int dfd, const char *dir) {
        struct stat st;

        if (fstat(dfd, &st) < 0)
                return cb_error_set(-errno, "--provision-dir %s: %s", dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return cb_error_set(-ENOTDIR, "--provision-dir %s is not a directory", dir);
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return cb_error_set(-EPERM, "--provision-dir %s is owned by uid %u, not root or uid %u: refusing it",
                                    dir, (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & 022)
                return cb_error_set(-EPERM, "--provision-dir %s is writable by group or others (mode %04o): "
                                    "refusing it", dir, (unsigned)(st.st_mode & 07777));
        return 0;
}

static int open_dir(const char *dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (dfd < 0)
                return cb_error_set(-errno, "--provision-dir %s: %s%s", dir, strerror(errno),
                                    errno == ELOOP ? " (a symlink: refusing it)" : "");
        int r = check_dir(dfd, dir);
        if (r < 0) {
                close(dfd);
                return r;
        }
        return dfd;
}

int provision_dir_check(const char *dir) {
        int dfd = open_dir(dir);

        if (dfd < 0)
                return dfd;
        close(dfd);
        return 0;
}

/* Read a blob file (regular, ours or root's, capped); *ret malloc'd. */
static int read_blob(int dfd, const char *name, char **ret, size_t *ret_len) {
        struct stat st;
        char *buf = NULL;
        size_t n = 0;
        int fd, r;

        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cb_error_set(-errno, "cannot open it: %s", strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                r = cb_error_set(-EINVAL, "not a regular file");
                goto out;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                r = cb_error_set(-EPERM, "owned by uid %u, not root or uid %u", (unsigned)st.st_uid,
                                 (unsigned)geteuid());
                goto out;
        }
        if (st.st_size > (off_t)FILE_MAX) {
                r = cb_error_set(-EFBIG, "%lld bytes, larger than any blob (%zu)", (long long)st.st_size,
                                 (size_t)FILE_MAX);
                goto out;
        }
        buf = malloc(FILE_MAX + 1);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        while (n <= FILE_MAX) {
                ssize_t k = read(fd, buf + n, FILE_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = cb_error_set(-errno, "read: %s", strerror(errno));
                        goto out;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (n > FILE_MAX) {
                r = cb_error_set(-EFBIG, "larger than any blob (%zu bytes)", (size_t)FILE_MAX);
                goto out;
        }
        *ret = buf;
        *ret_len = n;
        buf = NULL;
        r = 0;
out:
        free(buf);
        close(fd);
        return r;
}

static void audit_file(const char *file, const char *secret, const char *decision, const char *reason) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:o*, s:s, s:o*}", "time", (json_int_t)time(NULL), "socket", "dir",
                              "route", "provision.dir", "file", cb_json_string_lossy(file), "decision", decision,
                              "reason", cb_json_string_lossy(reason)); /* a file name need not be UTF-8 */

        if (!o)
                return;
        if (secret && secret[0])
                json_object_set_new(o, "secret", json_string(secret));
        if (audit_emit(o) < 0)
                say("cannot write the audit record for %s", file);
        json_decref(o);
}

void provision_dir_scan(const char *dir, const char *when) {
        size_t imported = 0, refused = 0;
        struct dirent *de;
        DIR *d;
        int dfd = open_dir(dir);

        if (dfd < 0) {
                say("%s: not scanned: %s", when, cb_error_last());
                return;
        }
        d = fdopendir(dfd);
        if (!d) {
                say("%s: %s: %s", when, dir, strerror(errno));
                close(dfd);
                return;
        }
        while ((de = readdir(d))) {
                char expect[CB_NAME_MAX + 1], *text = NULL;
                size_t len = 0, fl = strlen(de->d_name), sl = strlen(SEAL_SUFFIX);
                cb_prov_result res;
                int r;

                /* Dot files are how a deployment system writes a blob before renaming it in. */
                if (de->d_name[0] == '.')
                        continue;
                if (fl > sl && strcmp(de->d_name + fl - sl, SEAL_SUFFIX) == 0)
                        fl -= sl;
                if (fl > CB_NAME_MAX || (snprintf(expect, sizeof(expect), "%.*s", (int)fl, de->d_name),
                                         cb_name_check(expect) < 0)) {
                        say("%s: %.200s refused: its name must be NAME or NAME%s for the secret NAME", when,
                            de->d_name, SEAL_SUFFIX);
                        refused++;
                        continue;
                }
                r = read_blob(dirfd(d), de->d_name, &text, &len);
                if (r == 0)
                        r = cb_prov_import(cbd.store, text, len, expect, (uint64_t)time(NULL), false, &res);
                else
                        memset(&res, 0, sizeof(res)), res.refusal = CB_PROV_MALFORMED;
                free(text);
                if (r < 0) {
                        say("%s: %.200s refused (%s): %s; left in place", when, de->d_name,
                            cb_prov_refusal_code(res.refusal), cb_error_last());
                        audit_file(de->d_name, res.name, "deny", cb_error_last());
                        refused++;
                        continue;
                }
                imported++;
                scanner_rebuild();
                say("%s: imported %s version %u (sealed at %llu to key %s) from %.200s", when, res.name, res.version,
                    (unsigned long long)res.created, res.key_id, de->d_name);
                audit_file(de->d_name, res.name, "allow", "imported");
                if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        say("%s: imported %.200s but cannot remove it: %s (a second import would be refused as a "
                            "replay)", when, de->d_name, strerror(errno));
        }
        closedir(d);
        say("%s: %s: %zu imported, %zu refused", when, dir, imported, refused);
}
