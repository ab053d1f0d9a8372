/* SPDX-License-Identifier: Apache-2.0 */
/* Offline store verbs: init, check.  They open the store directly (no
 * daemon), so they run as the store's owner. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "kek.h"
#include "provision.h"
#include "store.h"

struct store_opts {
        const char *state_dir;
        const char *unlock;
        unsigned long long argon2_ops, argon2_mem_mib;
        int json;
        const char *tpm2_tcti, *tpm2_pcrs;
};

enum { OPT_STATE_DIR = 256, OPT_UNLOCK, OPT_ARGON2_OPS, OPT_ARGON2_MEM, OPT_JSON, OPT_HELP, OPT_TPM2_TCTI,
       OPT_TPM2_PCRS };

static const struct option store_options[] = {
        { "state-dir", required_argument, NULL, OPT_STATE_DIR },
        { "unlock", required_argument, NULL, OPT_UNLOCK },
        { "argon2-ops", required_argument, NULL, OPT_ARGON2_OPS },
        { "argon2-mem-mib", required_argument, NULL, OPT_ARGON2_MEM },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, OPT_HELP },
        { "tpm2-tcti", required_argument, NULL, OPT_TPM2_TCTI },
        { "tpm2-pcrs", required_argument, NULL, OPT_TPM2_PCRS },
        {},
};

static int parse_ull(const char *s, unsigned long long *ret) {
        char *e;

        errno = 0;
        *ret = strtoull(s, &e, 10);
        return errno || *e || e == s || s[0] == '-' ? -EINVAL : 0;
}

/* 1 = --help shown, 0 = parsed, <0 = usage exit code negated. */
static int parse_store_opts(int argc, char **argv, const char *usage, struct store_opts *o) {
        int c;

        memset(o, 0, sizeof(*o));
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", store_options, NULL)) != -1) {
                switch (c) {
                case OPT_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case OPT_UNLOCK:
                        o->unlock = optarg;
                        break;
                case OPT_ARGON2_OPS:
                        if (parse_ull(optarg, &o->argon2_ops) < 0)
                                return -cli_usage("--argon2-ops takes a number");
                        break;
                case OPT_ARGON2_MEM:
                        if (parse_ull(optarg, &o->argon2_mem_mib) < 0 || o->argon2_mem_mib > 4096)
                                return -cli_usage("--argon2-mem-mib takes a number of MiB (8..4096)");
                        break;
                case OPT_JSON:
                        o->json = 1;
                        break;
                case OPT_TPM2_TCTI:
                        o->tpm2_tcti = optarg;
                        break;
                case OPT_TPM2_PCRS:
                        o->tpm2_pcrs = optarg;
                        break;
                case 'h':
                case OPT_HELP:
                        printf("usage: %s\n", usage);
                        return 1;
                default:
                        return -cli_usage("%s: unknown or incomplete option '%s'", argv[0], argv[optind - 1]);
                }
        }
        if (optind != argc)
                return -cli_usage("%s: unexpected argument '%.64s'", argv[0], argv[optind]);
        if (!o->state_dir || !o->unlock)
                return -cli_usage("%s needs --state-dir DIR and --unlock SPEC", argv[0]);
        if (o->tpm2_pcrs && strcmp(argv[0], "init") != 0)
                return -cli_usage("%s: --tpm2-pcrs is chosen at init and stored; it cannot change here", argv[0]);
        return 0;
}

/* The tpm2 fields of spec from the options (NULLs leave the defaults). */
static int spec_set_tpm2(cb_unlock_spec *spec, const struct store_opts *o) {
        if ((o->tpm2_pcrs || o->tpm2_tcti) && spec->kind != CB_UNLOCK_TPM2 && spec->kind != CB_UNLOCK_TPM2_KEYFILE)
                return cli_usage("--tpm2-%s needs --unlock tpm2 or tpm2+keyfile:PATH", o->tpm2_pcrs ? "pcrs" : "tcti");
        if ((o->tpm2_tcti && !(spec->tpm2_tcti = strdup(o->tpm2_tcti))) ||
            (o->tpm2_pcrs && !(spec->tpm2_pcrs = strdup(o->tpm2_pcrs))))
                return cli_fail(-ENOMEM, "out of memory");
        return 0;
}

/* What init made, as text or (--json) one JSON object. */
static int init_said(const struct store_opts *o, const char *id, const cb_unlock_spec *spec) {
        if (o->json) {
                json_t *j = json_pack("{s:b, s:s?, s:s, s:s}", "created", 1, "store_id", id, "state_dir", o->state_dir,
                                      "unlock", cb_unlock_kind_name(spec->kind));
                char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;

                json_decref(j);
                if (!t)
                        return cli_fail(-ENOMEM, "out of memory");
                puts(t);
                free(t);
        } else if (id) {
                printf("created store %s in %s (unlock: %s)\n", id, o->state_dir, cb_unlock_kind_name(spec->kind));
        } else {
                printf("created store in %s (unlock: %s)\n", o->state_dir, cb_unlock_kind_name(spec->kind));
        }
        return CB_EXIT_OK;
}

int cmd_init(int argc, char **argv) {
        static const char usage[] =
                "credbroker init --state-dir DIR --unlock SPEC [--argon2-ops N] [--argon2-mem-mib N]\n"
                "                [--tpm2-tcti STRING] [--tpm2-pcrs LIST] [--json]\n"
                "  SPEC: passphrase (prompt), passphrase:FILE, passphrase:fd:N, keyfile:PATH (created 0400\n"
                "  with 32 random bytes if missing), tpm2, tpm2+keyfile:PATH.\n"
                "  Argon2id defaults: libsodium MODERATE (3 passes, 256 MiB).\n"
                "  tpm2: --tpm2-tcti (default device:/dev/tpmrm0); --tpm2-pcrs 7 or 0,7 binds the store to\n"
                "  those sha256 PCRs at their current values (default: no PCR policy).\n"
                "  --json: {\"created\":true,\"store_id\",\"state_dir\",\"unlock\"} (store_id null when\n"
                "  the store could not be reopened here: a prompted or fd passphrase).";
        struct store_opts o;
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        char id[33];
        int r;

        r = parse_store_opts(argc, argv, usage, &o);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        r = cb_unlock_spec_parse(o.unlock, &spec);
        if (r < 0)
                return cli_fail(r, "%s", cb_error_last());
        spec->argon2_ops = o.argon2_ops;
        spec->argon2_mem = o.argon2_mem_mib << 20;
        if ((r = spec_set_tpm2(spec, &o)) != 0)
                goto out;
        r = cb_store_create(o.state_dir, spec);
        if (r < 0) {
                r = cli_fail(r, "init: %s", cb_error_last());
                goto out;
        }
        /* Open it back: proves the store is usable with the spec given. */
        if ((spec->kind == CB_UNLOCK_PASSPHRASE && !spec->path && spec->fd < 0) || spec->fd >= 0) {
                r = init_said(&o, NULL, spec);
                goto out;
        }
        r = cb_store_open(o.state_dir, spec, &s);
        if (r < 0) {
                r = cli_fail(r, "init: created, but reopening failed: %s", cb_error_last());
                goto out;
        }
        /* The provisioning keypair (keys/provision.h); stores init could not
         * reopen (a prompted passphrase) get theirs at the daemon's start. */
        r = cb_prov_keys_ensure(s, NULL);
        if (r < 0) {
                r = cli_fail(r, "init: created, but making the provisioning keypair failed: %s", cb_error_last());
                goto out;
        }
        cb_store_id_hex(s, id);
        r = init_said(&o, id, spec);
out:
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        return r;
}

int cmd_check(int argc, char **argv) {
        static const char usage[] =
                "credbroker check --state-dir DIR --unlock SPEC [--tpm2-tcti STRING] [--json]\n"
                "  Offline integrity check: header checksum and MAC, the whole log chain, every live\n"
                "  version decrypted, exactly one current version per secret.  Prints no values.\n"
                "  Exit 0 ok, 3 wrong key, 4 integrity error (the message names the file).";
        struct store_opts o;
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        size_t nsec = 0, nver = 0;
        char id[33];
        int r;

        r = parse_store_opts(argc, argv, usage, &o);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        r = cb_unlock_spec_parse(o.unlock, &spec);
        if (r < 0)
                return cli_fail(r, "%s", cb_error_last());
        if ((r = spec_set_tpm2(spec, &o)) != 0)
                goto out;
        r = cb_store_open(o.state_dir, spec, &s);
        if (r >= 0)
                r = cb_store_verify(s, &nsec, &nver);
        if (r < 0) {
                r = cli_fail(r, "check: %s", cb_error_last());
                goto out;
        }
        cb_store_id_hex(s, id);
        if (o.json)
                printf("{\"ok\":true,\"store_id\":\"%s\",\"generation\":%llu,\"secrets\":%zu,\"versions\":%zu}\n",
                       id, (unsigned long long)cb_store_generation(s), nsec, nver);
        else
                printf("ok: store %s, generation %llu, %zu secrets, %zu live versions verified\n", id,
                       (unsigned long long)cb_store_generation(s), nsec, nver);
        r = CB_EXIT_OK;
out:
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        return r;
}
