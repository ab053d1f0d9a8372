/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provisioning verbs: pubkey (admin.sock: show, list, rotate, retire the
 * broker's provisioning keys), seal (offline: no broker, no store; the
 * value from stdin is sealed to a public key into a cbseal1 blob, see
 * keys/provision.h) and import (admin.sock: blobs from arguments, files or
 * stdin).  The value only ever exists in sodium_malloc memory here.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "provision.h"

/* ---- talking to admin.sock ---- */

/* One admin request; *ret is the parsed answer.  Refusals (4xx) exit 7.
 * Returns 0 or the exit code negated after printing why. */
static int call(const char *verb, const char *method, const char *path, const char *body, json_t **ret) {
        cb_client *c = NULL;
        char *text = NULL;
        json_t *o = NULL;
        int r;

        r = cli_connect(1, &c);
        if (r < 0)
                return r;
        r = cb_client_request(c, method, path, body, body ? strlen(body) : 0, &text, NULL);
        if (r < 0) {
                int code = cli_fail_client(r, c, verb);
                r = -(r == -EINVAL || r == -EPROTO ? CB_EXIT_DENIED : code); /* 400, 409: refused */
                goto out;
        }
        o = json_loads(text, 0, NULL);
        if (!json_is_object(o)) {
                r = -cli_fail(-EPROTO, "%s: malformed answer from the broker", verb);
                goto out;
        }
        *ret = o;
        o = NULL;
        r = 0;
out:
        json_decref(o);
        free(text);
        cb_client_free(c);
        return r;
}

static const char *jstr(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "?";
}

/* Broker-supplied text: no control characters on the terminal. */
static void put_safe(const char *s) {
        for (; s && *s; s++)
                putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void print_key(json_t *k) {
        put_safe(jstr(k, "public_key"));
        fputs("\nkey_id ", stdout);
        put_safe(jstr(k, "key_id"));
        putchar('\n');
}

/* ---- pubkey ---- */

int cmd_pubkey(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker pubkey [--json] | --list [--json] | --rotate [--json] | --retire KEY_ID [--json]\n"
                "  Print the broker's provisioning public key (cbpk1.…, give it to 'seal --recipient')\n"
                "  and its key id (16 hex digits: the first 8 bytes of BLAKE2b-256 of the key).\n"
                "  --list: every key with its state: current (what seal should use), accepted (an older\n"
                "    key: blobs sealed to it still import), retired (gone).\n"
                "  --rotate: add a new key; it becomes current, the old one stays accepted.\n"
                "  --retire KEY_ID: blobs sealed to that (non-current) key no longer import; its private\n"
                "    key is destroyed.\n";
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },     { "list", no_argument, NULL, 'l' },
                { "rotate", no_argument, NULL, 'r' },   { "retire", required_argument, NULL, 'R' },
                { "help", no_argument, NULL, 'h' },     {},
        };
        const char *retire = NULL;
        bool json = false, list = false, rotate = false;
        json_t *o = NULL;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'j': json = true; break;
                case 'l': list = true; break;
                case 'r': rotate = true; break;
                case 'R': retire = optarg; break;
                case 'h': fputs(usage, stdout); return CB_EXIT_OK;
                default: return cli_usage("pubkey: unknown or incomplete option '%.64s'", argv[optind - 1]);
                }
        }
        if (optind != argc)
                return cli_usage("pubkey takes no arguments");
        if (list + rotate + !!retire > 1)
                return cli_usage("pubkey: give at most one of --list, --rotate, --retire");
        if (retire) {
                unsigned char id[CB_PROV_KEY_ID_LEN];
                char body[64];

                if (cb_prov_key_id_parse(retire, id) < 0)
                        return cli_usage("pubkey --retire: %s", cb_error_last());
                snprintf(body, sizeof(body), "{\"key_id\":\"%s\"}", retire);
                r = call("pubkey --retire", "POST", "/v1/admin/pubkey/retire", body, &o);
        } else if (rotate) {
                r = call("pubkey --rotate", "POST", "/v1/admin/pubkey/rotate", NULL, &o);
        } else {
                r = call("pubkey", "GET", list ? "/v1/admin/pubkeys" : "/v1/admin/pubkey", NULL, &o);
        }
        if (r < 0)
                return -r;
        if (json) {
                char *t = json_dumps(o, JSON_COMPACT);
                if (t)
                        puts(t);
                free(t);
        } else if (retire) {
                printf("retired provisioning key %s\n", retire);
        } else if (list) {
                size_t i;
                json_t *k;

                printf("%-16s  %-8s  %-7s  %-20s  %s\n", "KEY_ID", "STATE", "VERSION", "CREATED", "PUBLIC_KEY");
                json_array_foreach(json_object_get(o, "keys"), i, k) {
                        char when[32] = "-";
                        time_t t = (time_t)json_integer_value(json_object_get(k, "created"));
                        struct tm tm;

                        if (gmtime_r(&t, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
                        put_safe(json_object_get(k, "key_id") ? jstr(k, "key_id") : "-");
                        printf("%*s  %-8s  v%-6lld  %-20s  ",
                               json_object_get(k, "key_id") ? 0 : 15, "", jstr(k, "state"),
                               (long long)json_integer_value(json_object_get(k, "version")), when);
                        put_safe(json_object_get(k, "public_key") ? jstr(k, "public_key") : "-");
                        putchar('\n');
                }
        } else {
                print_key(o);
        }
        json_decref(o);
        return CB_EXIT_OK;
}

/* ---- seal ---- */

/* UNIXTIME, or +N with an optional s/m/h/d suffix (from now). */
/* The value, as put reads it (read_value: a terminal line with echo off, or
 * all of stdin), into a new secret buffer.  Unlike put, one trailing "\n"
 * is dropped from binary input too, unless keep_newline.  Returns 0 or the
 * exit code negated. */
static int seal_read_value(const char *name, bool keep_newline, cb_secbuf **ret) {
        unsigned char *raw = NULL;
        size_t n = 0;
        cb_secbuf *v;
        int r;

        /* keep_newline=true: read_value then strips only a terminal's line end. */
        r = read_value("seal", name, true, &raw, &n);
        if (r < 0)
                return r;
        if (!keep_newline && raw[n - 1] == '\n')
                n--;
        if (n == 0) {
                sodium_free(raw);
                return -cli_usage("seal: refusing an empty value (pipe it on stdin)");
        }
        v = cb_secbuf_new(n);
        if (!v) {
                sodium_free(raw);
                return -cli_fail(-ENOMEM, "out of memory");
        }
        memcpy(cb_secbuf_data(v), raw, n);
        cb_secbuf_truncate(v, n);
        sodium_free(raw);
        *ret = v;
        return 0;
}

int cmd_seal(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker seal --recipient cbpk1.KEY --name NAME [--host H]... [--inject T]\n"
                "                       [--method M]... [--path-prefix P]... [--label K=V]...\n"
                "                       [--ca-file PATH] [--pin sha256//B64] [--secret-not-after TIME]\n"
                "                       [--not-after TIME] [--keep-newline] [-o FILE] [--json]  < VALUE\n"
                "  Offline (no broker, no store): seal the value read from stdin, with the metadata 'put'\n"
                "  takes, to the broker's public key ('credbroker pubkey'); print a cbseal1 blob (or write\n"
                "  it to FILE, mode 0600).  Only that broker can open it; anyone with the public key can\n"
                "  make one, so who may import is decided by admin.sock and --provision-dir permissions.\n"
                "  --not-after TIME: the blob cannot be imported after TIME (UNIXTIME, +N[s|m|h|d], RFC 3339).\n"
                "  --secret-not-after TIME: the secret's own expiry, sealed in its metadata (put's\n"
                "    --not-after).  --ca-file is a path on the broker's machine (absolute).\n"
                "  One trailing newline is dropped from the value unless --keep-newline.\n"
                "  --json: {\"name\",\"blob\",\"not_after\"} on stdout (\"blob\": null with -o FILE).\n";
        static const struct option opts[] = {
                { "recipient", required_argument, NULL, 'r' }, { "name", required_argument, NULL, 'n' },
                { "host", required_argument, NULL, 'H' },      { "inject", required_argument, NULL, 'I' },
                { "method", required_argument, NULL, 'M' },    { "path-prefix", required_argument, NULL, 'P' },
                { "label", required_argument, NULL, 'L' },     { "ca-file", required_argument, NULL, 'C' },
                { "pin", required_argument, NULL, 'p' },       { "secret-not-after", required_argument, NULL, 'S' },
                { "not-after", required_argument, NULL, 'N' }, { "keep-newline", no_argument, NULL, 'k' },
                { "output", required_argument, NULL, 'o' },    { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        unsigned char pk[crypto_box_PUBLICKEYBYTES];
        cb_prov_payload pl = { 0 };
        const char *recipient = NULL, *name = NULL, *output = NULL;
        bool keep = false, json = false;
        char *text = NULL;
        cb_meta *m = calloc(1, sizeof(*m));
        int ch, r;

        if (!m || sodium_init() < 0) {
                free(m);
                return cli_fail(-ENOMEM, "out of memory");
        }
        pl.meta = m;
        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                r = 0;
                switch (ch) {
                case 'r': recipient = optarg; break;
                case 'n': name = optarg; break;
                case 'H': r = cb_strv_push(&m->hosts, optarg, CB_META_MAX_HOSTS); break;
                case 'M': r = cb_strv_push(&m->methods, optarg, CB_META_MAX_METHODS); break;
                case 'P': r = cb_strv_push(&m->path_prefixes, optarg, CB_META_MAX_PREFIXES); break;
                case 'L': r = cb_strv_push(&m->labels, optarg, CB_META_MAX_LABELS); break;
                case 'I':
                case 'C':
                case 'p': {
                        char **f = ch == 'I' ? &m->inject : ch == 'C' ? &m->ca_file : &m->pin;
                        if (*f) {
                                r = cli_usage("seal: %s given twice", argv[optind - 1]);
                                goto out;
                        }
                        *f = strdup(optarg);
                        r = *f ? 0 : -ENOMEM;
                        break;
                }
                case 'S':
                case 'N':
                        if (cli_parse_time(optarg, ch == 'S' ? &m->not_after : &pl.not_after) < 0) {
                                r = cli_usage("seal: %s takes UNIXTIME, +N[s|m|h|d] or an RFC 3339 time", argv[optind - 1]);
                                goto out;
                        }
                        break;
                case 'k': keep = true; break;
                case 'o': output = optarg; break;
                case 'j': json = true; break;
                case 'h':
                        fputs(usage, stdout);
                        r = CB_EXIT_OK;
                        goto out;
                default:
                        r = cli_usage("seal: unknown or incomplete option '%.64s'", argv[optind - 1]);
                        goto out;
                }
                if (r < 0) {
                        r = cli_usage("seal: too many of %s", argv[optind - 1]);
                        goto out;
                }
        }
        if (optind != argc) {
                r = cli_usage("seal: unexpected argument '%.64s' (the value comes from stdin)", argv[optind]);
                goto out;
        }
        if (!recipient || !name) {
                r = cli_usage("seal needs --recipient KEY and --name NAME");
                goto out;
        }
        if (cb_prov_pk_parse(recipient, pk) < 0) {
                r = cli_usage("seal: --recipient: %s", cb_error_last());
                goto out;
        }
        if (cb_name_check(name) < 0) {
                r = cli_usage("seal: --name: %s", cb_error_last());
                goto out;
        }
        if (m->ca_file && m->ca_file[0] != '/') {
                r = cli_usage("seal: --ca-file must be an absolute path on the broker's machine");
                goto out;
        }
        if (cb_meta_validate(m) < 0) {
                r = cli_usage("seal: %s", cb_error_last());
                goto out;
        }
        snprintf(pl.name, sizeof(pl.name), "%s", name);
        pl.created = (uint64_t)time(NULL);
        r = seal_read_value(name, keep, &pl.value);
        if (r < 0) {
                r = -r;
                goto out;
        }
        r = cb_prov_seal(pk, &pl, &text);
        if (r < 0) {
                r = cli_fail(r, "seal: %s", cb_error_last());
                goto out;
        }
        if (output) {
                int fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                size_t n = strlen(text);

                if (fd < 0) {
                        r = cli_fail(-errno, "seal: %s: %s", output, strerror(errno));
                        goto out;
                }
                text[n] = '\n';
                r = cli_write_all(fd, text, n + 1);
                text[n] = 0;
                if (r < 0 || fsync(fd) < 0 || close(fd) < 0) {
                        r = cli_fail(r < 0 ? r : -errno, "seal: writing %s failed", output);
                        (void)unlink(output);
                        goto out;
                }
        }
        if (json) {
                /* The blob is sealed: only the broker can open it. */
                json_t *o = json_pack("{s:s, s:s?, s:I}", "name", name, "blob", output ? NULL : text, "not_after",
                                      (json_int_t)pl.not_after);
                char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;

                json_decref(o);
                if (!t) {
                        r = cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                puts(t);
                free(t);
        } else if (!output) {
                puts(text);
        }
        r = CB_EXIT_OK;
out:
        cb_prov_payload_clear(&pl);
        free(text);
        return r;
}

/* ---- import ---- */

struct blob {
        const char *arg;
        char *text;
        size_t len;
        char expect[CB_NAME_MAX + 1]; /* from a file name, "" for literal blobs */
        char name[CB_NAME_MAX + 1];   /* the sealed name, from the dry run */
};

static int read_fd_capped(int fd, char **ret, size_t *ret_len) {
        const size_t cap = CB_PROV_TEXT_MAX + 64;
        char *buf = malloc(cap + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        while (n <= cap) {
                ssize_t k = read(fd, buf + n, cap + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        free(buf);
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (n > cap) {
                free(buf);
                return -EFBIG;
        }
        buf[n] = 0;
        *ret = buf;
        *ret_len = n;
        return 0;
}

/* A blob argument: literal text, "-" (stdin) or a file NAME / NAME.cbseal. */
static int load_blob(struct blob *b) {
        const char *base;
        size_t bl, sl = strlen(".cbseal");
        int fd, r;

        if (strncmp(b->arg, CB_PROV_BLOB_PREFIX, strlen(CB_PROV_BLOB_PREFIX)) == 0) {
                b->text = strdup(b->arg);
                b->len = b->text ? strlen(b->text) : 0;
                return b->text ? 0 : cli_fail(-ENOMEM, "out of memory");
        }
        if (strcmp(b->arg, "-") == 0) {
                r = read_fd_capped(STDIN_FILENO, &b->text, &b->len);
                return r < 0 ? cli_fail(r, "import: stdin: %s", r == -EFBIG ? "larger than any blob"
                                                                              : strerror(-r))
                             : 0;
        }
        base = strrchr(b->arg, '/');
        base = base ? base + 1 : b->arg;
        bl = strlen(base);
        if (bl > sl && strcmp(base + bl - sl, ".cbseal") == 0)
                bl -= sl;
        if (bl > CB_NAME_MAX || (snprintf(b->expect, sizeof(b->expect), "%.*s", (int)bl, base),
                                 cb_name_check(b->expect) < 0))
                return cli_usage("import: %.200s: a blob file is named NAME or NAME.cbseal for the secret NAME",
                                 b->arg);
        fd = open(b->arg, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return cli_fail(-errno, "import: %.200s: %s", b->arg, strerror(errno));
        r = read_fd_capped(fd, &b->text, &b->len);
        close(fd);
        if (r < 0)
                return cli_fail(r, "import: %.200s: %s", b->arg, r == -EFBIG ? "larger than any blob" : strerror(-r));
        return 0;
}

static char *import_body(const struct blob *b, bool dry) {
        json_t *o = json_pack("{s:s%, s:b}", "blob", b->text, b->len, "dry_run", dry);
        char *t;

        if (o && b->expect[0])
                json_object_set_new(o, "expect_name", json_string(b->expect));
        t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return t;
}

/* The broker's request body cap is 128 KiB; a batch that fits goes in one
 * request (all or nothing in the broker), a larger one blob by blob. */
#define BATCH_BODY_MAX (120 * 1024)
#define BATCH_MAX 64

static bool batch_fits(const struct blob *b, size_t n) {
        size_t total = 64;

        if (n < 2 || n > BATCH_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                total += b[i].len + 64 + CB_NAME_MAX;
        return total <= BATCH_BODY_MAX;
}

static void print_imported(json_t *o, bool json) {
        if (json) {
                char *t = json_dumps(o, JSON_COMPACT);
                if (t)
                        puts(t);
                free(t);
                return;
        }
        fputs("imported ", stdout);
        put_safe(jstr(o, "name"));
        printf(" version %lld (sealed to key ", (long long)json_integer_value(json_object_get(o, "version")));
        put_safe(jstr(o, "key_id"));
        puts(")");
}

/* All blobs in one request: the broker checks every one, then stores all
 * or none under one lock hold. */
static int import_batch(const struct blob *b, size_t n, bool dry, bool json) {
        json_t *arr = json_array(), *o = NULL, *res = NULL;
        char *body = NULL;
        int k, r;

        for (size_t i = 0; arr && i < n; i++) {
                json_t *e = json_pack("{s:s%}", "blob", b[i].text, b[i].len);
                if (e && b[i].expect[0])
                        json_object_set_new(e, "expect_name", json_string(b[i].expect));
                if (!e || json_array_append_new(arr, e) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        }
        o = arr ? json_pack("{s:o, s:b}", "blobs", arr, "dry_run", dry) : NULL;
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!body)
                return cli_fail(-ENOMEM, "out of memory");
        k = call("import", "POST", "/v1/admin/import", body, &res);
        free(body);
        if (k < 0)
                return -k; /* the broker's message says which blob and that nothing was imported */
        r = CB_EXIT_OK;
        if (dry) {
                printf("%zu blob(s) would import\n", json_array_size(json_object_get(res, "imported")));
        } else {
                json_t *it;
                size_t i;
                json_array_foreach(json_object_get(res, "imported"), i, it)
                        print_imported(it, json);
        }
        json_decref(res);
        return r;
}

int cmd_import(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker import [--dry-run] [--json] BLOB|FILE|- ...\n"
                "  Import sealed provisioning blobs (from 'credbroker seal') through admin.sock.  A FILE\n"
                "  must be named NAME or NAME.cbseal for the secret NAME it holds.  Every blob is checked\n"
                "  first; if any is refused (wrong key, expired, tampered, truncated, name mismatch, older\n"
                "  than the stored version, two blobs for one name) none is imported.  --dry-run: check only.\n";
        static const struct option opts[] = {
                { "dry-run", no_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct blob *b = NULL;
        bool dry = false, json = false;
        size_t n = 0, refused = 0;
        int ch, r = CB_EXIT_OK;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'd': dry = true; break;
                case 'j': json = true; break;
                case 'h': fputs(usage, stdout); return CB_EXIT_OK;
                default: return cli_usage("import: unknown or incomplete option '%.64s'", argv[optind - 1]);
                }
        }
        if (optind == argc)
                return cli_usage("import needs at least one BLOB, FILE or -");
        n = (size_t)(argc - optind);
        b = calloc(n, sizeof(*b));
        if (!b)
                return cli_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                b[i].arg = argv[optind + (int)i];
                if ((r = load_blob(&b[i])) != 0)
                        goto out;
        }
        if (batch_fits(b, n)) {
                r = import_batch(b, n, dry, json);
                goto out;
        }
        /* Too large for one request: pass 1 checks every blob, storing nothing. */
        for (size_t i = 0; i < n; i++) {
                char *body = import_body(&b[i], true);
                json_t *o = NULL;
                int k;

                if (!body) {
                        r = cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                k = call(b[i].expect[0] ? b[i].arg : "import", "POST", "/v1/admin/import", body, &o);
                free(body);
                if (k == 0 && json_is_string(json_object_get(o, "name")) && cb_name_check(jstr(o, "name")) == 0)
                        snprintf(b[i].name, sizeof(b[i].name), "%s", jstr(o, "name"));
                json_decref(o);
                if (k < 0) {
                        if (-k == CB_EXIT_UNAVAILABLE || -k == CB_EXIT_FAIL) {
                                r = -k;
                                goto out;
                        }
                        refused++;
                        r = -k;
                        continue;
                }
                /* Each dry run is alone: a second blob for a name would pass it
                 * and then be refused as a replay after the first was stored. */
                for (size_t j = 0; j < i; j++) {
                        if (b[i].name[0] && strcmp(b[i].name, b[j].name) == 0) {
                                fprintf(stderr, "credbroker: import: two blobs for %s in one batch (arguments "
                                        "%zu and %zu): import them one at a time, oldest first\n", b[i].name, j + 1,
                                        i + 1);
                                refused++;
                                r = CB_EXIT_USAGE;
                                break;
                        }
                }
        }
        if (refused) {
                fprintf(stderr, "credbroker: import: %zu of %zu blob(s) refused: nothing imported\n", refused, n);
                goto out;
        }
        if (dry) {
                printf("%zu blob(s) would import\n", n);
                goto out;
        }
        /* Pass 2: import. */
        for (size_t i = 0; i < n; i++) {
                char *body = import_body(&b[i], false);
                json_t *o = NULL;
                int k;

                if (!body) {
                        r = cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                k = call("import", "POST", "/v1/admin/import", body, &o);
                free(body);
                if (k < 0) {
                        fprintf(stderr, "credbroker: import: stopped at %.200s; %zu of %zu imported before it\n",
                                b[i].arg, i, n);
                        r = -k;
                        goto out;
                }
                print_imported(o, json);
                json_decref(o);
        }
out:
        for (size_t i = 0; b && i < n; i++)
                free(b[i].text);
        free(b);
        return r;
}
