/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay driver: feeds every file of the given corpus directories (or the
 * given files) to LLVMFuzzerTestOneInput, so meson test exercises each
 * harness on its corpus without libFuzzer.  Fails if a corpus is empty.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define REPLAY_MAX (4 * 1024 * 1024)

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *p;
        size_t n;

        if (!f) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        p = malloc(REPLAY_MAX);
        if (!p)
                abort();
        n = fread(p, 1, REPLAY_MAX, f);
        fclose(f);
        /* Copy into an exact-size block so ASan sees overreads. */
        uint8_t *q = malloc(n ? n : 1);
        if (!q)
                abort();
        memcpy(q, p, n);
        free(p);
        LLVMFuzzerTestOneInput(q, n);
        free(q);
        return 0;
}

int main(int argc, char **argv) {
        size_t count = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *e;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        count++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((e = readdir(d))) {
                        char path[4096];

                        if (e->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
                        if (run_file(path) < 0)
                                return 1;
                        count++;
                }
                closedir(d);
        }
        printf("replayed %zu inputs\n", count);
        if (count == 0) {
                fprintf(stderr, "replay: empty corpus\n");
                return 1;
        }
        return 0;
}
