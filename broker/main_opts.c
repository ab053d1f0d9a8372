/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd's --help text and the warning about replaceable exe
 * selectors (--check-policy prints it, the daemon logs it at start); split
 * from main.c, issue 18.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "error.h"
#include "fsutil.h"
#include "main_internal.h"

/* An exe selector names a file; if someone other than root (or us) can
 * replace that file or rename its directory entries, they can put their own
 * program where the selector looks and be served as the client.  Pinning
 * exe_sha256 closes that; otherwise the operator should hear of it.
 * Returns true (with the reason in why) when the file is replaceable. */
static bool exe_replaceable(const char *res, char *why, size_t n) {
        struct stat st;

        if (stat(res, &st) < 0)
                return false; /* does not resolve: reported separately */
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                snprintf(why, n, "it is owned by uid %u", (unsigned)st.st_uid);
                return true;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                snprintf(why, n, "it is writable by group or others (mode %04o)", (unsigned)(st.st_mode & 07777));
                return true;
        }
        if (cb_path_check_trusted(res, geteuid(), "exe") < 0) {
                snprintf(why, n, "%s", cb_error_last());
                return true;
        }
        return false;
}

/* Warn (check: print; daemon: log) about each client whose exe selector
 * names a file a non-root user could replace. */
void warn_replaceable_exes(const cb_policy *p, bool print) {
        for (size_t i = 0; i < cb_policy_n_clients(p); i++) {
                const char *name, *exe, *res;
                char why[512];

                if (!cb_policy_client_exe(p, i, &name, &exe, &res) || !res || cb_policy_client_exe_pinned(p, i) ||
                    !exe_replaceable(res, why, sizeof(why)))
                        continue;
                if (print)
                        printf("warning: client %s: exe %s can be replaced by a user other than root (%s): whoever "
                               "replaces it is served as %s; make it root-owned or pin exe_sha256\n",
                               name, res, why, name);
                else
                        say_warn("policy: client %s: exe %s can be replaced by a user other than root (%s): whoever "
                                 "replaces it is served as %s; make it root-owned or pin exe_sha256",
                                 name, res, why, name);
        }
}

void usage(FILE *f) {
        fputs("usage: credbrokerd [--state-dir DIR] [--run-dir DIR] [--policy FILE] [--unlock SPEC]\n"
              "                   [--audit-log FILE] [--admin-group GROUP] [--threads N]\n"
              "                   [--tool-threads N] [--max-tokens N] [--max-tokens-per-uid N]\n"
              "                   [--refusals-recorded N]\n"
              "                   [--tombstone-bytes N]\n"
              "                   [--listen-tcp 127.0.0.1:PORT] [--approval-timeout SECONDS]\n"
              "                   [--default-ttl SECONDS]\n"
              "                   [--tpm2-tcti STRING] [--provision-dir DIR] [--rotate-hook-dir DIR]\n"
              "       credbrokerd --check-policy FILE\n"
              "       credbrokerd --version\n"
              "       credbrokerd --routes  (the HTTP API's routes, from the table the daemon serves:\n"
              "                              sockets, method, path, grant needed, audit names)\n\n"
              "defaults: --state-dir " DEFAULT_STATE_DIR " --run-dir " DEFAULT_RUN_DIR "\n"
              "          --policy " DEFAULT_POLICY " --unlock " DEFAULT_UNLOCK "\n"
              "          --audit-log: none unless given (JSON lines, one record per decision, MAC-chained;\n"
              "            SIGHUP reopens it; see docs/audit.md)\n"
              "          --alert-hook CMD: none (run by /bin/sh with each alert as a JSON line on stdin)\n"
              "          --alert-hook-timeout SECONDS: 10 (a hook still running then is killed)\n"
              "          --denial-alert N/SECONDS: 10/60 (N denials of one client within SECONDS alert; 'off')\n"
              "          (SECONDS anywhere: a number, or a duration such as 90s, 5m, 8h, 1d)\n"
              "       credbrokerd --state-dir DIR --unlock SPEC --verify-audit FILE [--verify-audit FILE]...\n"
              "                   [--verify-json]\n"
              "          verify audit files offline (oldest first), the daemon not running\n"
              "          --tool-threads 1 (threads serving tools.sock, 1-64; admin.sock has one)\n"
              "          --threads 2 (proxy transfer loops, each also serving --listen-tcp, 1-64)\n"
              "          --max-tokens 100000, --max-tokens-per-uid 10000 (live tokens; an expired,\n"
              "            revoked or orphaned one stops counting at once; see docs/capacity.md)\n"
              "          --refusals-recorded 600 (a uid's refusals audited one by one per minute; past\n"
              "            that one record says so and its refusals are 429, unrecorded; 0: no limit)\n"
              "          --tombstone-bytes 4194304 (what explains a dead token's refusal for a minute:\n"
              "            32 bytes a token, oldest forgotten first; 4096-1073741824)\n"
              "          --rotate-hook-dir: none (DIR/NAME prints a new value for NAME, run on a leak\n"
              "            with on_leak rotate; DIR/_leaked is told of each leaked rotation)\n"
              "          --listen-tcp: none (127.x.x.x:PORT or [::1]:PORT: the proxy over loopback TCP;\n"
              "            callers are known by uid only (sock_diag), so only uid-bound tokens work)\n"
              "          --approval-timeout 120 (seconds a token request under an \"approval\" grant\n"
              "            waits for 'credbroker approve' before it is denied; 1-86400)\n"
              "          --default-ttl 300 (a token's lifetime when its request names none, and the cap\n"
              "            of a grant without max_ttl; a session token, credbroker exec --proxy's, lives\n"
              "            under such a grant as long as its exec, at most 86400 s; 1-86400)\n"
              "          --tpm2-tcti device:/dev/tpmrm0 (the TPM for --unlock tpm2 / tpm2+keyfile:PATH;\n"
              "            e.g. swtpm:host=127.0.0.1,port=2321)\n"
              "          --provision-dir: none (DIR of cbseal1 blobs named NAME or NAME.cbseal, imported\n"
              "            at start and on SIGHUP; imported files are removed, refused ones stay;\n"
              "            DIR must be owned by root or us and not group/other writable)\n",
              f);
}
