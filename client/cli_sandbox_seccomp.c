/* SPDX-License-Identifier: Apache-2.0 */
/* credbroker sandbox: the seccomp filter handed to bubblewrap as BPF. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <seccomp.h>

#include "cli.h"
#include "cli_sandbox_internal.h"

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

int sb_seccomp_filter(struct sb_state *st) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
        int r = ctx ? 0 : -ENOMEM, fd = -1;

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
        if (r == 0) {
                /* bwrap reads the BPF program from this descriptor (it
                 * inherits it: no close-on-exec). */
                fd = memfd_create("credbroker-seccomp", MFD_ALLOW_SEALING);
                if (fd < 0)
                        r = -errno;
        }
        if (r == 0)
                r = seccomp_export_bpf(ctx, fd);
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r == 0)
                (void)fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
        seccomp_release(ctx);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return -cli_fail(r, "sandbox: cannot build the seccomp filter (libseccomp): %s", strerror(-r));
        }
        st->seccomp_fd = fd;
        return 0;
}
