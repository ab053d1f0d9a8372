/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed provisioning in the daemon: the provisioning keypair at start and
 * --provision-dir (blobs dropped there are imported at start and on
 * SIGHUP).  The work is in keys/provision*.c; the admin routes (pubkey,
 * key rotation and retirement, import) are api/api_provision.c.  Runs
 * single-threaded at start, and under the admin lock and the store's
 * writers' mutex in main.c's signal loop.
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

#include "log.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "scan.h"
#include "error.h"
#include "provision.h"
#include "provision_dir.h"

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

int provision_start(cb_store *store) {
        bool created;
        cb_prov_key_info k;
        char id[CB_PROV_KEY_ID_HEX];

        if (cb_prov_keys_ensure(store, &created) < 0 || cb_prov_keys_current(store, &k) < 0)
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
        r = audit_emit_wait(o); /* before the import (or removal) takes effect */
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
static int scan_one(cb_store *store, int dfd, const char *when, const char *file, const char *expect) {
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
                r = cb_prov_import(store, text, len, expect, (uint64_t)time(NULL), true, &res);
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
        r = cb_prov_import(store, text, len, expect, (uint64_t)time(NULL), false, &res);
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

void provision_dir_scan(cb_store *store, const char *dir, const char *when) {
        size_t imported = 0, refused = 0, n = 0;
        char **names = NULL;
        struct dirent *de;
        DIR *d;
        int dfd;

        /* Fail closed like the admin routes: no import that cannot be
         * audited (each record is also waited for before its effect). */
        if (!audit_available() || audit_failed(NULL, 0)) {
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
                r = scan_one(store, dirfd(d), when, names[i], expect);
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
