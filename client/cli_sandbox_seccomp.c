/* SPDX-License-Identifier: Apache-2.0 */
/* credbroker sandbox: the seccomp filter handed to bubblewrap as BPF.  The
 * program is built with libseccomp when credbroker is built
 * (sb_seccomp_gen.c: the rules and their why); here it is only copied into
 * a sealed memfd: no libseccomp to load and no filter to compile at each
 * start (issue 17's start-up benchmark). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "cli_sandbox_internal.h"
#include "sb_seccomp_bpf.h"

int sb_seccomp_filter(struct sb_state *st) {
        /* bwrap reads the BPF program from this descriptor (it inherits
         * it: no close-on-exec) once released from --block-fd.  It stays
         * empty until then (sb_seccomp_fill): should the launcher die
         * before the release, bwrap finds no program, its prctl fails and
         * CMD never runs -- rather than running without the mounts the
         * launcher had still to make. */
        int fd = memfd_create("credbroker-seccomp", MFD_ALLOW_SEALING);

        if (fd < 0)
                return -cli_fail(-errno, "sandbox: memfd_create: %s", strerror(errno));
        st->seccomp_fd = fd;
        return 0;
}

int sb_seccomp_fill(struct sb_state *st) {
        int fd = st->seccomp_fd, r = 0;
        size_t off = 0;

        while (r == 0 && off < sizeof(sb_seccomp_bpf)) {
                ssize_t k = write(fd, sb_seccomp_bpf + off, sizeof(sb_seccomp_bpf) - off);
                if (k < 0 && errno != EINTR)
                        r = -errno;
                else if (k > 0)
                        off += (size_t)k;
        }
        /* The offset is bwrap's too (one open file): back to the start. */
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
                r = -errno;
        close(fd);
        st->seccomp_fd = -1;
        if (r < 0)
                return -cli_fail(r, "sandbox: cannot hand over the seccomp filter: %s; CMD was not run", strerror(-r));
        return 0;
}
