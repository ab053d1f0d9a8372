/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: the seccomp filter, built with libseccomp at build
 * time (run by meson; its output is sb_seccomp_bpf.h, the BPF program the
 * launcher hands bubblewrap: cli_sandbox_seccomp.c).  Built for the
 * machine the CLI is built for: a cross build runs it through meson's
 * exe_wrapper, or fails.  Each rule's why: docs/sandbox.md.
 *
 *   sb-seccomp-gen OUTPUT.h
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <seccomp.h>

/* Refused with EPERM (a program sees a clean error, not a kill).  Each
 * line's why: docs/sandbox.md. */
static const char *const denied_calls[] = {
        /* reading or steering other processes */
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
        /* the kernel keyring (other sessions' secrets live there) */
        "keyctl", "add_key", "request_key",
        /* kernel attack surface, observation of others */
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "fanotify_init", "lookup_dcookie", "syslog", "vhangup", "iopl", "ioperm", "acct", "quotactl",
        "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "personality",
        /* the mount family */
        "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr",
        /* kernel modules, kexec */
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
        /* the clock */
        "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime",
};

int main(int argc, char **argv) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
        int r = ctx ? 0 : -ENOMEM, fd = -1;
        FILE *out;

        if (argc != 2) {
                fprintf(stderr, "usage: sb-seccomp-gen OUTPUT.h\n");
                return 2;
        }
        /* Another ABI's system calls (i386 through int 0x80, x32) would
         * dodge rules written for this one's numbers: they kill. */
        if (r == 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        for (size_t i = 0; r == 0 && i < sizeof(denied_calls) / sizeof(denied_calls[0]); i++) {
                int nr = seccomp_syscall_resolve_name(denied_calls[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not a call of this architecture */
                r = seccomp_rule_add(ctx, deny, nr, 0);
        }
        /* socket(): only AF_INET and AF_INET6 (not raw, not packet) and
         * NETLINK_ROUTE in the sandbox's own network namespace.  No new
         * AF_UNIX socket: a host Unix socket (tools.sock, docker, dbus,
         * ssh-agent, an abstract one) cannot be reached.  socketpair()
         * stays: its two ends reach nothing else.  The family is an int
         * but the filter sees 64 bits: anything >= AF_MAX (upper bits set)
         * is refused as a whole. */
        for (int fam = 0; r == 0 && fam < AF_MAX; fam++)
                if (fam != AF_INET && fam != AF_INET6 && fam != AF_NETLINK)
                        r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX));
        static const int bad_types[] = { SOCK_RAW, SOCK_RDM, SOCK_PACKET };
        for (int k = 0; r == 0 && k < 2; k++)
                for (size_t t = 0; r == 0 && t < sizeof(bad_types) / sizeof(bad_types[0]); t++)
                        r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 2,
                                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(k ? AF_INET6 : AF_INET)),
                                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (scmp_datum_t)bad_types[t]));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK),
                                     SCMP_A2(SCMP_CMP_NE, (scmp_datum_t)NETLINK_ROUTE));
        /* Typing into a terminal (TIOCSTI) or the console (TIOCLINUX):
         * the command is 32 bits to the kernel, so only those are compared. */
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)TIOCSTI));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)TIOCLINUX));
        if (r == 0 && (fd = memfd_create("sb-seccomp-gen", 0)) < 0)
                r = -errno;
        if (r == 0)
                r = seccomp_export_bpf(ctx, fd);
        seccomp_release(ctx);
        off_t n = r == 0 ? lseek(fd, 0, SEEK_CUR) : -1;
        if (r < 0 || n <= 0 || n % 8 != 0 || lseek(fd, 0, SEEK_SET) != 0) {
                fprintf(stderr, "sb-seccomp-gen: cannot build the filter: %s\n", strerror(r < 0 ? -r : EIO));
                return 1;
        }
        unsigned char *b = malloc((size_t)n);
        if (!b || read(fd, b, (size_t)n) != (ssize_t)n) {
                fprintf(stderr, "sb-seccomp-gen: read: %s\n", strerror(errno));
                return 1;
        }
        out = fopen(argv[1], "w");
        if (!out)
                return 1;
        fprintf(out, "/* Generated by sb-seccomp-gen (client/sb_seccomp_gen.c) with libseccomp: do not edit. */\n"
                     "#pragma once\n#include <stddef.h>\nstatic const unsigned char sb_seccomp_bpf[%lld] = {",
                (long long)n);
        for (off_t i = 0; i < n; i++)
                fprintf(out, "%s0x%02x,", i % 16 ? " " : "\n        ", b[i]);
        fprintf(out, "\n};\n");
        free(b);
        close(fd);
        return fclose(out) == 0 ? 0 : 1;
}
