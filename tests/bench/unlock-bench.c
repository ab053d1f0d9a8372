/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unlock timing for tests/bench/unlock.sh.
 *
 *   unlock-bench init DIR SPEC [TCTI [PCRS]] create a store (default costs)
 *   unlock-bench open DIR SPEC TCTI RUNS     time cb_store_open + close
 *   unlock-bench ping TCTI RUNS              time a bare TPM connection +
 *                                            one command (the floor under
 *                                            the tpm2 figures)
 *
 * Prints one "ms <milliseconds>" line per run.  TCTI "-" = none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "kek.h"
#include "store.h"
#include "tpm2.h"

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static cb_unlock_spec *spec_of(const char *s, const char *tcti) {
        cb_unlock_spec *spec;

        if (cb_unlock_spec_parse(s, &spec) < 0) {
                fprintf(stderr, "unlock-bench: %s\n", cb_error_last());
                exit(2);
        }
        if (tcti && strcmp(tcti, "-") != 0)
                spec->tpm2_tcti = strdup(tcti);
        return spec;
}

int main(int argc, char **argv) {
        if (argc >= 4 && strcmp(argv[1], "init") == 0) {
                cb_unlock_spec *spec = spec_of(argv[3], argc > 4 ? argv[4] : NULL);
                int r;

                if (argc > 5)
                        spec->tpm2_pcrs = strdup(argv[5]);
                r = cb_store_create(argv[2], spec);

                cb_unlock_spec_free(spec);
                if (r < 0) {
                        fprintf(stderr, "unlock-bench: init: %s\n", cb_error_last());
                        return 1;
                }
                return 0;
        }
        if (argc == 6 && strcmp(argv[1], "open") == 0) {
                cb_unlock_spec *spec = spec_of(argv[3], argv[4]);
                int runs = atoi(argv[5]);

                for (int i = 0; i < runs; i++) {
                        cb_store *s = NULL;
                        double t0 = now_ms();
                        int r = cb_store_open(argv[2], spec, &s);

                        cb_store_close(s);
                        if (r < 0) {
                                fprintf(stderr, "unlock-bench: open: %s\n", cb_error_last());
                                return 1;
                        }
                        printf("ms %.3f\n", now_ms() - t0);
                }
                cb_unlock_spec_free(spec);
                return 0;
        }
        if (argc == 4 && strcmp(argv[1], "ping") == 0) {
                int runs = atoi(argv[3]);

                for (int i = 0; i < runs; i++) {
                        cb_tpm2 *t = NULL;
                        double t0 = now_ms();

                        if (cb_tpm2_open(argv[2], &t) < 0) {
                                fprintf(stderr, "unlock-bench: %s\n", cb_error_last());
                                return 1;
                        }
                        cb_tpm2_close(t);
                        printf("ms %.3f\n", now_ms() - t0);
                }
                return 0;
        }
        fprintf(stderr, "usage: unlock-bench init DIR SPEC [TCTI [PCRS]] | open DIR SPEC TCTI RUNS | ping TCTI RUNS\n");
        return 2;
}
