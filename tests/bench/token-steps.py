#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sort `perf script -F ip,sym,dso` call stacks of credbrokerd (or token-bench's
floor servers) into the steps of a token request; print microseconds per
request for each (argv[1]: the server's CPU microseconds per request, which
the sample shares are scaled to).  Used by token-steps.sh.

A sample goes to the first step whose rule matches its stack, so each is
counted once: the identity's own steps first, then the token route's, our
HTTP glue, and what is left of the system calls libmicrohttpd makes (accept,
the read, the answer, the close) and its user-space code.  'kernel' in a
label means time inside that system call."""
import collections
import sys


def read_samples(f):
    """[(symbols leaf first, the leaf's library)] from `perf script -F ip,sym,dso`."""
    samples, cur, leaf = [], [], None
    for line in f:
        line = line.rstrip()
        if not line:
            if cur:
                samples.append((cur, leaf))
                cur, leaf = [], None
            continue
        p = line.split()
        if len(p) >= 2:
            cur.append(p[1])  # leaf first, root last
            if leaf is None and p[-1].startswith('(') and p[-1] != '(inlined)':
                leaf = p[-1].strip('()')  # an inlined frame's library is its caller's
    if cur:
        samples.append((cur, leaf))
    return [(c, lf or '?') for c, lf in samples]


# Whose code the leaf of a sample is in: the kernel, libc, a library, ours.
WHERE = (('kernel', ('kernel.kallsyms', 'vmlinux')), ('libc', ('libc.so',)), ('libsodium', ('libsodium',)),
         ('jansson', ('libjansson',)), ('libmicrohttpd', ('libmicrohttpd',)),
         ('ours', ('credbrokerd', 'token-bench')))


def where(dso):
    for name, keys in WHERE:
        if any(k in dso for k in keys):
            return name
    return 'other'


def syscall_of(s):
    """The user-space function that entered the kernel, or None."""
    if 'entry_SYSCALL_64_after_hwframe' in s:
        i = s.index('entry_SYSCALL_64_after_hwframe')
        return s[i + 1] if i + 1 < len(s) else '?'
    return None


def has(s, *names):
    return any(n in s for n in names)


RULES = [
    ('identity', 'SO_PEERCRED at accept (getsockopt)', lambda s: has(s, 'cb_peer_cred_read')),
    ('identity', 'account uid at accept (stat /proc/PID/ns/user)', lambda s: has(s, 'cb_peer_account_uid')),
    ('identity', 'SCM_PIDFD: pidfd made by the kernel in recvmsg', lambda s: has(s, 'scm_recv_unix')),
    ('identity', 'close of the SCM_PIDFD (cb_sender_untrack)', lambda s: has(s, 'cb_sender_untrack')),
    ('identity', "pidfd's pidfs inode (fstat, per connection)", lambda s: has(s, 'cb_pidfd_ino')),
    ('identity', 'writer pid claim (stat /proc/PID/ns/pid)', lambda s: has(s, 'cb_peer_writer_trusted')),
    ('identity', 'current credentials (PIDFD_GET_INFO)',
     lambda s: has(s, 'identify', 'current_ids') and has(s, '__GI___ioctl', '__ioctl')),
    ('identity', 'mount namespace note (stat /proc/PID/ns/mnt)', lambda s: has(s, 'cb_peer_same_mntns')),
    ('identity', 'executable name (readlink /proc/PID/exe)',
     lambda s: has(s, 'identify') and has(s, '__GI_readlink', '__GI___readlink', 'readlink')),
    ('identity', 'executable identity (stat /proc/PID/exe)', lambda s: has(s, 'identify') and has(s, '__GI___fstatat64')),
    ('identity', 'liveness (poll of the pidfd)', lambda s: has(s, 'identify') and has(s, '__GI___poll', '__poll')),
    ('identity', 'the rest of identification (user space)',
     lambda s: has(s, 'identify', 'cb_peer_identify_pidfd', 'cb_peer_identify_cred', 'hash_step', 'sender_of',
                   'cb_exe_cache_get')),
    ('identity', "recv() in libmicrohttpd's place (user space)",
     lambda s: has(s, 'recv', 'note') and not syscall_of(s)),
    ('token', 'request body parse (jansson)', lambda s: has(s, 'body_object')),
    ('token', "grant lookup (policy; stat of the policy's exe path)", lambda s: has(s, 'cb_policy_find_grant')),
    ('token', 'mint (getrandom, codec, keyed hash, table)', lambda s: has(s, 'cb_tokens_issue_fenced')),
    ('token', 'the 201 text (json_pack + json_dumps, or snprintf)',
     lambda s: has(s, 'json_pack', 'json_dumps', 'reply_json', 'reply_json_text')
     or (has(s, 'api_token') and has(s, '__GI___snprintf', '___snprintf_chk'))),
    ('token', 'MHD response object and headers (queue)', lambda s: has(s, 'queue', 'reply_response')),
    ('token', 'the rest of the token route', lambda s: has(s, 'api_token')),
    ('http', 'our libmicrohttpd callbacks (user space)',
     lambda s: has(s, 'dispatch', 'handle', 'handle_inner', 'completed', 'conn_notify', 'keep_target', 'flush',
                   'floor_handle', 'floor_conn_notify', 'floor_completed') and not syscall_of(s)),
    ('mhd+kernel', 'accept4', lambda s: syscall_of(s) == 'accept4'),
    ('mhd+kernel', 'recvmsg/recv of the request (kernel)',
     lambda s: syscall_of(s) in ('__recvmsg_syscall', '__libc_recvmsg', '__libc_recv', '__libc_recvfrom', 'recvfrom')),
    ('mhd+kernel', 'sendmsg of the answer (kernel)', lambda s: syscall_of(s) in ('__libc_sendmsg', '__libc_send', '__send')),
    ('mhd+kernel', 'close of the socket (kernel)', lambda s: syscall_of(s) in ('__GI___close', '__close')),
    ('mhd+kernel', 'epoll', lambda s: bool(syscall_of(s)) and 'epoll' in syscall_of(s)),
    ('mhd+kernel', 'other system calls', lambda s: syscall_of(s) is not None),
    ('mhd+kernel', 'libmicrohttpd and libc in user space (the rest)', lambda s: True),
]


def main():
    us = float(sys.argv[1])
    samples = read_samples(sys.stdin)
    if not samples:
        sys.exit('token-steps.py: no samples')
    n = len(samples)
    count = collections.Counter()
    owner = collections.defaultdict(collections.Counter)
    other = collections.Counter()
    for s, dso in samples:
        for group, label, rule in RULES:
            if rule(s):
                count[(group, label)] += 1
                owner[group][where(dso)] += 1
                owner['all'][where(dso)] += 1
                if label == 'other system calls':
                    other[syscall_of(s)] += 1
                break
    groups = collections.Counter()
    print(f"# {n} samples; microseconds of server CPU per request")
    for group, label, _ in RULES:
        v = count[(group, label)] / n * us
        groups[group] += v
        print(f"{group:10s} {label:55s} {v:6.2f}")
    for name, k in other.most_common(4):
        print(f"{'':10s}   other: {name:48s} {k / n * us:6.2f}")
    for group in ('identity', 'token', 'http', 'mhd+kernel'):
        print(f"{'total':10s} {group:55s} {groups[group]:6.2f}")
    print(f"{'total':10s} {'all':55s} {us:6.2f}")
    # Whose code ran (the sample's innermost frame), per group.
    names = [w for w, _ in WHERE] + ['other']
    print("# whose code ran, us per request: " + " ".join(f"{w:>13s}" for w in names))
    for group in ('identity', 'token', 'http', 'mhd+kernel', 'all'):
        print(f"{'where':10s} {group:22s}" + " ".join(f"{owner[group][w] / n * us:13.2f}" for w in names))


if __name__ == '__main__':
    main()
