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
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "daemon.h"
#include "scan.h"
#include "error.h"
#include "provision.h"

#define SEAL_SUFFIX ".cbseal"
#define FILE_MAX (CB_PROV_TEXT_MAX + 64) /* a blob plus a little whitespace */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        cb_log(CB_LOG_NOTICE, "provision: %s", line);
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

#define BATCH_MAX 64

static bool batch_item_ok(json_t *e) {
        json_t *x = json_object_get(e, "expect_name");

        return json_is_object(e) && json_is_string(json_object_get(e, "blob")) &&
               (!x || (json_is_string(x) && cb_name_check(json_string_value(x)) == 0)) &&
               json_object_size(e) == (x ? 2u : 1u);
}

/* POST /v1/admin/import {"blobs": [{"blob", "expect_name"?}...], "dry_run"?}:
 * all or nothing.  Every blob is checked (dry run, and no two for one name)
 * before any is stored, all under the one cbd.lock hold of this request,
 * so neither a refusal nor a concurrent admin can leave a half import; only
 * a store failure part way can (the reply says how many were stored). */
static int route_import_batch(request *rq, json_t *o) {
        json_t *arr = json_object_get(o, "blobs"), *dr = json_object_get(o, "dry_run"), *a = NULL;
        uint64_t now = (uint64_t)time(NULL);
        cb_prov_result *res = NULL;
        size_t n = json_array_size(arr), i = 0;
        bool dry = dr && json_is_true(dr);
        int r, ret;

        rq->route = "admin.import";
        if (!json_is_array(arr) || n == 0 || n > BATCH_MAX || json_object_get(o, "blob") ||
            json_object_get(o, "expect_name") || (dr && !json_is_boolean(dr)))
                return reply_error(rq, 400, "bad_request",
                                   "want {\"blobs\": [{\"blob\": \"cbseal1...\", \"expect_name\": NAME (optional)}, "
                                   "... (1 to %d)], \"dry_run\": BOOL (optional)}", BATCH_MAX);
        for (i = 0; i < n; i++)
                if (!batch_item_ok(json_array_get(arr, i)))
                        return reply_error(rq, 400, "bad_request", "blobs[%zu]: want {\"blob\": \"cbseal1...\", "
                                           "\"expect_name\": NAME (optional)}", i);
        res = calloc(n, sizeof(*res));
        if (!res)
                return reply_error(rq, 500, "internal", "out of memory");
        for (i = 0; i < n; i++) {
                json_t *e = json_array_get(arr, i), *b = json_object_get(e, "blob");
                const char *x = json_string_value(json_object_get(e, "expect_name"));

                r = cb_prov_import(cbd.store, json_string_value(b), json_string_length(b), x, now, true, &res[i]);
                if (i == 0 && res[i].name[0])
                        snprintf(rq->secret, sizeof(rq->secret), "%s", res[i].name);
                if (r < 0) {
                        ret = reply_error(rq, refusal_status(res[i].refusal), cb_prov_refusal_code(res[i].refusal),
                                          "blob %zu of %zu: %s: nothing imported", i + 1, n, cb_error_last());
                        goto out;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(res[i].name, res[j].name) == 0) {
                                ret = reply_error(rq, 400, "bad_request",
                                                  "two blobs for %s in one batch (blobs %zu and %zu): nothing "
                                                  "imported; import them one at a time, oldest first",
                                                  res[i].name, j + 1, i + 1);
                                goto out;
                        }
        }
        a = json_array();
        for (i = 0; a && i < n; i++) {
                json_t *e = json_array_get(arr, i), *b = json_object_get(e, "blob");
                const char *x = json_string_value(json_object_get(e, "expect_name"));

                if (!dry) {
                        r = cb_prov_import(cbd.store, json_string_value(b), json_string_length(b), x, now, false,
                                           &res[i]);
                        if (r < 0) {
                                if (i)
                                        scanner_rebuild();
                                ret = reply_error(rq, 500, "internal", "blob %zu of %zu: %s (%zu imported before it)",
                                                  i + 1, n, cb_error_last(), i);
                                goto out;
                        }
                }
                json_t *it = json_pack("{s:s, s:s, s:I}", "name", res[i].name, "key_id", res[i].key_id, "created",
                                       (json_int_t)res[i].created);
                if (it && !dry)
                        json_object_set_new(it, "version", json_integer(res[i].version));
                json_array_append_new(a, it);
        }
        if (!dry)
                scanner_rebuild();
        ret = reply_json(rq, dry ? 200 : 201, json_pack("{s:o, s:b}", "imported", a, "dry_run", dry), false);
        a = NULL;
out:
        json_decref(a);
        free(res);
        return ret;
}

/* POST /v1/admin/import {"blob", "expect_name"?, "dry_run"?}: one blob per
 * request (a blob is at most ~107 KiB, under CB_BODY_MAX); or a batch (see
 * route_import_batch). */
static int route_import(request *rq) {
        static const char *const fields[] = { "blob", "expect_name", "dry_run", "blobs", NULL };
        cb_prov_result res;
        const char *blob, *expect = NULL;
        json_t *o, *e, *dr;
        bool dry = false;
        int r, ret;

        rq->route = "admin.import";
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        if (json_object_get(o, "blobs")) {
                ret = route_import_batch(rq, o);
                goto out;
        }
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

/* Read a blob file (regular, ours or root's, not group/other writable, one
 * link, capped); *ret malloc'd. */
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
        /* Anyone who can write the file can swap in a blob of their own (the
         * public key is public); a second name for it is a second way in. */
        if (st.st_mode & 022) {
                r = cb_error_set(-EPERM, "writable by group or others (mode %04o)", (unsigned)(st.st_mode & 07777));
                goto out;
        }
        if (st.st_nlink != 1) {
                r = cb_error_set(-EPERM, "has %ju hard links", (uintmax_t)st.st_nlink);
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

static int audit_file(const char *file, const char *secret, const char *decision, const char *reason) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:o*, s:s, s:o*}", "time", (json_int_t)time(NULL), "socket", "dir",
                              "route", "provision.dir", "file", cb_json_string_lossy(file), "decision", decision,
                              "reason", cb_json_string_lossy(reason)); /* a file name need not be UTF-8 */
        int r;

        if (!o)
                return -ENOMEM;
        if (secret && secret[0])
                json_object_set_new(o, "secret", json_string(secret));
        r = audit_emit(o);
        json_decref(o);
        return r;
}

#define SCAN_MAX 4096 /* files per scan; the rest wait for the next SIGHUP */

static uint64_t stranded_seen; /* .importing.* captures recovered since start (status) */

uint64_t provision_stranded_recovered(void) {
        return stranded_seen;
}
#define WORK_PREFIX ".importing."

/* Put a captured file back under its name (only if that name is still
 * free: a newer blob may have been renamed in meanwhile); else keep it as
 * .rejected.NAME.  Logs what it did. */
static void put_back(int dfd, const char *when, const char *work, const char *file) {
        char rej[sizeof(WORK_PREFIX) + NAME_MAX];

        if (renameat2(dfd, work, dfd, file, RENAME_NOREPLACE) == 0)
                return;
        /* A file system without RENAME_NOREPLACE: link() also refuses an existing name. */
        if (errno == EINVAL && linkat(dfd, work, dfd, file, 0) == 0) {
                if (unlinkat(dfd, work, 0) < 0)
                        say("%s: %.200s: cannot remove %.200s: %s", when, file, work, strerror(errno));
                return;
        }
        if (errno != EEXIST) {
                say("%s: %.200s: cannot rename %.200s back: %s; it stays as %.200s", when, file, work,
                    strerror(errno), work);
                return;
        }
        snprintf(rej, sizeof(rej), ".rejected.%s", file);
        if (renameat(dfd, work, dfd, rej) == 0)
                say("%s: %.200s was replaced while being read (the new one waits for the next scan); the "
                    "refused one is kept as %.200s", when, file, rej);
        else
                say("%s: %.200s: cannot rename %.200s to %.200s: %s", when, file, work, rej, strerror(errno));
}

/* One file: capture it by renaming it to .importing.FILE (dot files are
 * not scanned, and a blob renamed over FILE meanwhile is a new file the next
 * scan sees), check it with a dry run, write the audit record, then import
 * and remove it.  A refusal or an audit record that cannot be written puts
 * it back.  Returns 1 imported, 0 refused, -1 stop the scan. */
static int scan_one(int dfd, const char *when, const char *file, const char *expect) {
        char work[sizeof(WORK_PREFIX) + NAME_MAX], *text = NULL;
        cb_prov_result res;
        size_t len = 0;
        int r;

        if ((size_t)snprintf(work, sizeof(work), WORK_PREFIX "%s", file) >= sizeof(work))
                return 0; /* cannot happen: names are capped well below NAME_MAX */
        r = renameat2(dfd, file, dfd, work, RENAME_NOREPLACE);
        if (r < 0 && errno == EINVAL) /* no RENAME_NOREPLACE here: a stale capture is overwritten */
                r = renameat(dfd, file, dfd, work);
        if (r < 0) {
                if (errno == ENOENT)
                        return 0; /* gone since readdir */
                say("%s: %.200s not imported: cannot rename it to %.200s: %s; left in place", when, file, work,
                    strerror(errno));
                return 0;
        }
        memset(&res, 0, sizeof(res));
        r = read_blob(dfd, work, &text, &len);
        if (r == 0)
                r = cb_prov_import(cbd.store, text, len, expect, (uint64_t)time(NULL), true, &res);
        else
                res.refusal = CB_PROV_MALFORMED;
        if (r < 0) {
                say("%s: %.200s refused (%s): %s; left in place", when, file, cb_prov_refusal_code(res.refusal),
                    cb_error_last());
                put_back(dfd, when, work, file);
                if (audit_file(file, res.name, "deny", cb_error_last()) < 0)
                        say("%s: cannot write the audit record for %.200s", when, file);
                r = 0;
                goto out;
        }
        /* Fail closed: no import without its audit record. */
        if (audit_file(file, res.name, "allow", "importing") < 0) {
                say("%s: %.200s not imported: cannot write its audit record; left in place, scan stopped", when,
                    file);
                put_back(dfd, when, work, file);
                r = -1;
                goto out;
        }
        r = cb_prov_import(cbd.store, text, len, expect, (uint64_t)time(NULL), false, &res);
        if (r < 0) {
                say("%s: %.200s refused (%s): %s; left in place", when, file, cb_prov_refusal_code(res.refusal),
                    cb_error_last());
                put_back(dfd, when, work, file);
                if (audit_file(file, res.name, "deny", cb_error_last()) < 0)
                        say("%s: cannot write the audit record for %.200s", when, file);
                r = 0;
                goto out;
        }
        scanner_rebuild();
        say("%s: imported %s version %u (sealed at %llu to key %s) from %.200s", when, res.name, res.version,
            (unsigned long long)res.created, res.key_id, file);
        if (unlinkat(dfd, work, 0) < 0)
                say("%s: imported %.200s but cannot remove %.200s: %s (a second import would be refused as a "
                    "replay)", when, file, work, strerror(errno));
        r = 1;
out:
        free(text);
        return r;
}

static void free_names(char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

void provision_dir_scan(const char *dir, const char *when) {
        size_t imported = 0, refused = 0, n = 0;
        char **names = NULL;
        struct dirent *de;
        DIR *d;
        int dfd;

        /* Fail closed like the admin routes: no import that cannot be audited. */
        if (!audit_available()) {
                say("%s: not scanned: audit log unavailable", when);
                return;
        }
        dfd = open_dir(dir);
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
        names = calloc(SCAN_MAX, sizeof(*names));
        if (!names) {
                say("%s: not scanned: out of memory", when);
                goto out;
        }
        /* List first, then rename: renames while readdir runs could show a
         * file twice or not at all.  A .importing.FILE is a capture a
         * killed daemon left behind: listed to be put back (below). */
        while (n < SCAN_MAX && (de = readdir(d))) {
                /* Dot files are how a deployment system writes a blob before renaming it in. */
                if (de->d_name[0] == '.' && strncmp(de->d_name, WORK_PREFIX, strlen(WORK_PREFIX)) != 0)
                        continue;
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        say("%s: not scanned: out of memory", when);
                        goto out;
                }
                n++;
        }
        if (n == SCAN_MAX)
                say("%s: %s: more than %d files; the rest wait for the next scan", when, dir, SCAN_MAX);
        /* Stranded captures first: each goes back under its name (then it
         * is imported below like any file: the store refuses a replay if it
         * was imported already), or is kept as .rejected.FILE if that name
         * was reused meanwhile.  Reported on stderr, in the audit log and
         * in status. */
        for (size_t i = 0; i < n; i++) {
                const char *file;

                if (strncmp(names[i], WORK_PREFIX, strlen(WORK_PREFIX)) != 0)
                        continue;
                file = names[i] + strlen(WORK_PREFIX);
                stranded_seen++;
                say("%s: %.200s was left captured as %.200s by a daemon that stopped mid-import: putting it back "
                    "to be retried", when, file, names[i]);
                if (audit_file(file, NULL, "allow", "stranded import recovered: retried") < 0)
                        say("%s: cannot write the audit record for the stranded %.200s", when, names[i]);
                if (file[0] && file[0] != '.') {
                        put_back(dirfd(d), when, names[i], file);
                        memmove(names[i], file, strlen(file) + 1); /* retried below under its own name */
                }
        }
        for (size_t i = 0; i < n; i++) {
                if (names[i][0] == '.')
                        continue;
                char expect[CB_NAME_MAX + 1];
                size_t fl = strlen(names[i]), sl = strlen(SEAL_SUFFIX);
                int r;

                if (fl > sl && strcmp(names[i] + fl - sl, SEAL_SUFFIX) == 0)
                        fl -= sl;
                if (fl > CB_NAME_MAX || (snprintf(expect, sizeof(expect), "%.*s", (int)fl, names[i]),
                                         cb_name_check(expect) < 0)) {
                        say("%s: %.200s refused: its name must be NAME or NAME%s for the secret NAME", when,
                            names[i], SEAL_SUFFIX);
                        refused++;
                        continue;
                }
                r = scan_one(dirfd(d), when, names[i], expect);
                if (r < 0) {
                        refused++;
                        break;
                }
                if (r > 0)
                        imported++;
                else
                        refused++;
        }
        say("%s: %s: %zu imported, %zu refused", when, dir, imported, refused);
out:
        free_names(names, n);
        closedir(d);
}
