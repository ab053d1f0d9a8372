/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker tpm: what this machine's TPM offers (for operators deciding on
 * --unlock tpm2), and the anti-rollback recovery verb.  Offline: talks to
 * the TPM through the TCTI and to the store directly, never to the broker.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "error.h"
#include "fsutil.h"
#include "kek.h"
#include "store.h"
#include "tpm2.h"

#define SWTPM_DEFAULT_TCTI "swtpm:host=127.0.0.1,port=2321"

/* A program on PATH, or NULL. */
static const char *which(const char *prog, char *buf, size_t cap) {
        const char *path = getenv("PATH");
        const char *p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";

        while (*p) {
                const char *colon = strchr(p, ':');
                size_t n = colon ? (size_t)(colon - p) : strlen(p);

                if (n > 0 && (size_t)snprintf(buf, cap, "%.*s/%s", (int)n, p, prog) < cap &&
                    access(buf, X_OK) == 0)
                        return buf;
                p += n + (colon ? 1 : 0);
        }
        return NULL;
}

static int is_swtpm_tcti(const char *tcti) {
        return strncmp(tcti, "swtpm", 5) == 0 || strncmp(tcti, "mssim", 5) == 0;
}

/* Probe tcti; fills obj with what it finds.  1 = a TPM answered. */
static int probe(const char *tcti, json_t *obj) {
        cb_tpm2_info info;
        cb_tpm2 *t = NULL;
        json_t *banks;

        json_object_set_new(obj, "tcti", json_string(tcti));
        if (cb_tpm2_open(tcti, &t) < 0) {
                json_object_set_new(obj, "present", json_false());
                json_object_set_new(obj, "error", json_string(cb_error_last()));
                return 0;
        }
        json_object_set_new(obj, "present", json_true());
        if (cb_tpm2_get_info(t, &info) < 0) {
                json_object_set_new(obj, "error", json_string(cb_error_last()));
                cb_tpm2_close(t);
                return 1;
        }
        cb_tpm2_close(t);
        json_object_set_new(obj, "manufacturer", json_string(info.manufacturer));
        json_object_set_new(obj, "vendor", json_string(info.vendor));
        json_object_set_new(obj, "firmware", json_sprintf("%u.%u.%u.%u", info.firmware[0] >> 16,
                                                          info.firmware[0] & 0xffff, info.firmware[1] >> 16,
                                                          info.firmware[1] & 0xffff));
        json_object_set_new(obj, "software_tpm", json_boolean(info.software));
        banks = json_array();
        for (unsigned i = 0; i < info.nbanks; i++)
                json_array_append_new(banks, json_pack("{s:s,s:i}", "alg", cb_tpm2_alg_name(info.banks[i].alg),
                                                       "pcrs", (json_int_t)info.banks[i].npcrs));
        json_object_set_new(obj, "pcr_banks", banks);
        json_object_set_new(obj, "transient_objects", json_integer(info.transient));
        json_object_set_new(obj, "loaded_sessions", json_integer(info.sessions));
        json_object_set_new(obj, "nv_indices", json_integer(info.nv_indices));
        return 1;
}

static void print_text(const json_t *rep) {
        const json_t *tpm = json_object_get(rep, "tpm"), *sw = json_object_get(rep, "swtpm");
        const json_t *banks = json_object_get(tpm, "pcr_banks");
        size_t i;
        json_t *b;

        printf("TCTI:            %s\n", json_string_value(json_object_get(tpm, "tcti")));
        if (!json_is_true(json_object_get(tpm, "present"))) {
                printf("TPM:             absent (%s)\n", json_string_value(json_object_get(tpm, "error")));
        } else {
                printf("TPM:             present: %s %s, firmware %s%s\n",
                       json_string_value(json_object_get(tpm, "manufacturer")),
                       json_string_value(json_object_get(tpm, "vendor")),
                       json_string_value(json_object_get(tpm, "firmware")),
                       json_is_true(json_object_get(tpm, "software_tpm")) ? " (software TPM)" : "");
                printf("PCR banks:      ");
                json_array_foreach(banks, i, b)
                        printf(" %s (%lld PCRs)", json_string_value(json_object_get(b, "alg")),
                               (long long)json_integer_value(json_object_get(b, "pcrs")));
                printf("%s\n", json_array_size(banks) ? "" : " none");
                printf("loaded now:      %lld transient objects, %lld sessions; %lld NV indices defined\n",
                       (long long)json_integer_value(json_object_get(tpm, "transient_objects")),
                       (long long)json_integer_value(json_object_get(tpm, "loaded_sessions")),
                       (long long)json_integer_value(json_object_get(tpm, "nv_indices")));
        }
        printf("devices:         /dev/tpm0 %s, /dev/tpmrm0 %s\n",
               json_is_true(json_object_get(rep, "dev_tpm0")) ? "present" : "absent",
               json_is_true(json_object_get(rep, "dev_tpmrm0")) ? "present" : "absent");
        printf("swtpm:           %s; %s through %s\n",
               json_is_string(json_object_get(sw, "path")) ? json_string_value(json_object_get(sw, "path"))
                                                           : "not installed",
               json_is_true(json_object_get(sw, "reachable")) ? "reachable" : "not reachable",
               json_string_value(json_object_get(sw, "tcti")));
}

static int tpm_status(int argc, char **argv) {
        static const struct option opts[] = {
                { "tpm2-tcti", required_argument, NULL, 'X' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *tcti = CB_TPM2_DEFAULT_TCTI;
        char swpath[4096];
        json_t *rep, *tpm, *sw;
        int c, json = 0, present;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'X':
                        tcti = optarg;
                        break;
                case 'j':
                        json = 1;
                        break;
                case 'h':
                        printf("usage: credbroker tpm [--tpm2-tcti STRING] [--json]\n"
                               "       credbroker tpm accept-rollback --state-dir DIR --unlock SPEC "
                               "[--tpm2-tcti STRING]\n"
                               "  Reports the TPM behind the TCTI (default " CB_TPM2_DEFAULT_TCTI "): present,\n"
                               "  PCR banks allocated, objects loaded; device nodes; whether swtpm is installed\n"
                               "  and reachable.  Exit 0 when a TPM answers, 8 when none does.\n");
                        return CB_EXIT_OK;
                default:
                        return cli_usage("tpm: unknown or incomplete option '%s'", argv[optind - 1]);
                }
        }
        if (optind != argc)
                return cli_usage("tpm: unexpected argument '%.64s'", argv[optind]);
        rep = json_object();
        tpm = json_object();
        sw = json_object();
        if (!rep || !tpm || !sw)
                return cli_fail(-ENOMEM, "out of memory");
        present = probe(tcti, tpm);
        json_object_set_new(rep, "tpm", tpm);
        json_object_set_new(rep, "dev_tpm0", json_boolean(access("/dev/tpm0", F_OK) == 0));
        json_object_set_new(rep, "dev_tpmrm0", json_boolean(access("/dev/tpmrm0", F_OK) == 0));
        json_object_set_new(sw, "path", which("swtpm", swpath, sizeof(swpath)) ? json_string(swpath) : json_null());
        if (is_swtpm_tcti(tcti)) {
                json_object_set_new(sw, "tcti", json_string(tcti));
                json_object_set_new(sw, "reachable", json_boolean(present));
        } else {
                /* The TCTI names a device: is a swtpm listening where one
                 * usually does, too? */
                json_t *probe_sw = json_object();
                int up = probe_sw ? probe(SWTPM_DEFAULT_TCTI, probe_sw) : 0;

                json_decref(probe_sw);
                json_object_set_new(sw, "tcti", json_string(SWTPM_DEFAULT_TCTI));
                json_object_set_new(sw, "reachable", json_boolean(up));
        }
        json_object_set_new(rep, "swtpm", sw);
        if (json) {
                char *s = json_dumps(rep, JSON_COMPACT);

                if (s)
                        puts(s);
                free(s);
        } else {
                print_text(rep);
        }
        json_decref(rep);
        return present ? CB_EXIT_OK : CB_EXIT_UNAVAILABLE;
}

/* The operator confirms that an older copy of the store is the one to
 * keep: its generation is raised to the TPM counter's. */
static int tpm_accept_rollback(int argc, char **argv) {
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 's' },
                { "unlock", required_argument, NULL, 'u' },
                { "tpm2-tcti", required_argument, NULL, 'X' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *dir = NULL, *unlock = NULL, *tcti = NULL;
        bool json = false;
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        int lockfd = -1;
        uint64_t gen = 0;
        int c, r;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        dir = optarg;
                        break;
                case 'u':
                        unlock = optarg;
                        break;
                case 'X':
                        tcti = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("usage: credbroker tpm accept-rollback --state-dir DIR --unlock SPEC "
                               "[--tpm2-tcti STRING] [--json]\n"
                               "  After restoring an older copy of a TPM-bound store ON PURPOSE (a backup):\n"
                               "  raise its generation to the TPM counter so it opens again.  Secrets changed\n"
                               "  since the copy was made are back to their old values: rotate them.\n"
                               "  --json: {\"state_dir\",\"accepted\",\"generation\"} on stdout.\n");
                        return CB_EXIT_OK;
                default:
                        return cli_usage("tpm accept-rollback: unknown or incomplete option '%s'",
                                         argv[optind - 1]);
                }
        }
        if (optind != argc || !dir || !unlock)
                return cli_usage("tpm accept-rollback needs --state-dir DIR and --unlock SPEC");
        r = cb_unlock_spec_parse(unlock, &spec);
        if (r < 0)
                return cli_fail(r, "%s", cb_error_last());
        if (spec->kind != CB_UNLOCK_TPM2 && spec->kind != CB_UNLOCK_TPM2_KEYFILE) {
                r = cli_usage("tpm accept-rollback: only stores unlocked by tpm2 or tpm2+keyfile have a counter");
                goto out;
        }
        if (tcti && !(spec->tpm2_tcti = strdup(tcti))) {
                r = cli_fail(-ENOMEM, "out of memory");
                goto out;
        }
        /* Open without writing, verify every version, and only then raise
         * the generation: a copy that fails verification stays refused. */
        spec->accept_rollback = true;
        /* Never under a running daemon: it would keep serving the old state. */
        r = cb_lock_owner(dir, "daemon.lock", "state directory", &lockfd);
        if (r >= 0)
                r = cb_store_open(dir, spec, &s);
        if (r >= 0)
                r = cb_store_verify(s, NULL, NULL);
        if (r >= 0)
                r = cb_store_accept_rollback(s, &gen);
        if (r < 0) {
                r = cli_fail(r, "tpm accept-rollback: %s", cb_error_last());
                goto out;
        }
        if (json) {
                json_t *o = json_pack("{s:s, s:b, s:I}", "state_dir", dir, "accepted", r > 0, "generation",
                                      (json_int_t)gen);
                char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                if (!t) {
                        r = cli_fail(-EINVAL, "tpm accept-rollback: the state directory's path is not UTF-8 (or "
                                     "out of memory)");
                        goto out;
                }
                puts(t);
                free(t);
        } else if (r == 0)
                printf("store in %s is not rolled back (generation %llu matches the TPM counter); nothing to "
                       "accept\n", dir, (unsigned long long)gen);
        else
                printf("store in %s accepted at generation %llu (matches the TPM counter); rotate secrets "
                       "changed since the copy was made\n", dir, (unsigned long long)gen);
        r = CB_EXIT_OK;
out:
        cb_store_close(s);
        if (lockfd >= 0)
                close(lockfd);
        cb_unlock_spec_free(spec);
        return r;
}

int cmd_tpm(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "accept-rollback") == 0)
                return tpm_accept_rollback(argc - 1, argv + 1);
        return tpm_status(argc, argv);
}
