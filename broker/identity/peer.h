/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Peer identity of a local client, established per request: the writer's
 * (pid, uid, gid) and pidfd from its per-message credentials (the server
 * collects them, sender.h; cb_peer_identify_pidfd) or, for callers holding
 * only a socket, SO_PEERCRED + SO_PEERPIDFD (cb_peer_identify); its
 * current credentials; the executable's file identity (stat of
 * /proc/<pid>/exe: device and inode, whatever mount namespace the peer
 * sees it through) and, unless skipped, its SHA-256 (cached by
 * device/inode/size/mtime/ctime); the cgroup v2 path when asked; finally a
 * check through the pidfd that the same process is still alive -- so a pid
 * recycled between the checks cannot borrow another identity.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h> /* struct ucred */
#include <sys/stat.h>
#include <sys/types.h>

#define CB_CGROUP_MAX 512
#define CB_EXE_HASH_MAX (512 << 20) /* larger executables are refused, not hashed */

typedef struct cb_peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        int pidfd;                   /* owned; -1 when not available */
        bool pidfd_pinned;           /* pidfd from SO_PEERPIDFD (Linux >= 6.5): the connecting process
                                      * itself; false after the pidfd_open(pid) fallback, which names
                                      * whoever holds the pid by then */
        bool pidfd_borrowed;         /* pidfd belongs to the connection (cb_peer_done leaves it open) */
        bool exe_known;              /* exe_path, exe_dev/ino were read (not CB_PEER_SKIP_EXE) */
        bool hash_known;             /* exe_sha256 was computed (not CB_PEER_SKIP_HASH) */
        dev_t exe_dev;               /* stat(/proc/<pid>/exe): the file itself, whatever */
        ino_t exe_ino;               /* mount namespace the peer sees it through */
        struct stat exe_st;          /* the whole stat (the hash cache's key), when exe_path was read */
        char exe_path[PATH_MAX];     /* readlink(/proc/<pid>/exe) as the peer's namespace names it; for logs only */
        unsigned char exe_sha256[32];
        char exe_sha256_hex[65];
        char cgroup[CB_CGROUP_MAX];  /* cgroup v2 path ("/user.slice/..."), "" if none or not read */
        bool cgroup_known;           /* cgroup was read (CB_PEER_CGROUP) */
} cb_peer;

/* What cb_peer_identify reads beyond uid/gid/pid, pidfd and executable. */
enum {
        CB_PEER_CGROUP = 1 << 0,     /* /proc/<pid>/cgroup: only when a policy selects on it */
        CB_PEER_SKIP_EXE = 1 << 1,   /* no /proc/<pid>/exe at all (lazy identity: no selector needs it) */
        CB_PEER_SKIP_HASH = 1 << 2,  /* stat/readlink the executable, but do not hash it */
};

typedef struct cb_exe_cache cb_exe_cache;

/* A cache of executable hashes keyed by (dev, ino, size, mtime, ctime);
 * bounded (least recently used evicted; 0 = cache nothing; at most 65536).
 * NULL on ENOMEM. */
cb_exe_cache *cb_exe_cache_new(size_t max_entries);
void cb_exe_cache_free(cb_exe_cache *c);

/* Identify the peer of the connected AF_UNIX socket fd into *ret (which the
 * caller releases with cb_peer_done); `what` holds CB_PEER_* bits for the
 * optional parts.  Returns 0, or:
 *   -EPERM        pid 0 (peer in another pid namespace) or the overflow
 *                 uid/gid (so a genuine "nobody" client is refused too);
 *   -ESRCH        the process exited, or exec'd, while being identified;
 *   -ENAMETOOLONG a cgroup path of CB_CGROUP_MAX bytes or more (refused,
 *                 never cut: a cut path could match a shorter selector);
 *   -EAGAIN       the executable changed while it was being hashed;
 *   -EFBIG        an executable larger than CB_EXE_HASH_MAX (not cached);
 *   -EBADMSG, -EFBIG, -EPROTO  malformed or oversized /proc data;
 *   -errno        from the kernel otherwise.
 * cache may be NULL (then every call hashes); it may be shared by threads.
 * A file changed less than 2 s ago is hashed but not cached (a write
 * within one timestamp tick could otherwise leave its key unchanged).
 *
 * What this proves: the uid, and which executable the process at the other
 * end runs *now*.  A process of the same uid that cooperates with another
 * (connects, then execs a trusted binary while a sibling holding the same
 * socket sends the requests) can borrow that executable's identity: uid is
 * the boundary; exe, hash and cgroup only narrow it within a uid. */
int cb_peer_identify(int fd, cb_exe_cache *cache, unsigned what, cb_peer *ret) __attribute__((warn_unused_result));

/* SO_PEERCRED of the connected AF_UNIX socket fd into *ret: (pid, uid,
 * gid) of the peer as of its connect().  The kernel never changes them
 * for the life of the connection, so a server may read them once (at
 * accept) and pass them to cb_peer_identify_cred for every request.
 * 0 or -errno (-EPROTO on a short answer); no check of the values. */
int cb_peer_cred_read(int fd, struct ucred *ret) __attribute__((warn_unused_result));

/* cb_peer_identify with the SO_PEERCRED answer already in hand: *cred must
 * come from cb_peer_cred_read() on this very fd (the pidfd taken here is
 * for the same connect()-time process, and its liveness check at the end
 * is what makes the pid in *cred safe).  Same checks, same results; one
 * system call fewer.  cb_peer_identify is cb_peer_cred_read + this. */
int cb_peer_identify_cred(int fd, const struct ucred *cred, cb_exe_cache *cache, unsigned what, cb_peer *ret)
        __attribute__((warn_unused_result));

/* Identify the process that wrote a request's bytes: *cred from its
 * SCM_CREDENTIALS, pidfd from its SCM_PIDFD (borrowed: stays open, owned by
 * the caller; -1 when the kernel has no SCM_PIDFD, then pidfd_open(pid)
 * is used and pidfd_pinned is false), pidfd_ino its cb_pidfd_ino() or 0
 * (then the name of the executable is read on every call; with it, once
 * per process and executable file: peer_proc.c).  Beyond cb_peer_identify_cred's
 * checks, the process's *current* credentials must still be *cred's, all
 * of them (real, effective, saved and file-system uid and gid): a process
 * that changed uid since it wrote, or is half-way through a change, is
 * refused (-EPERM).  Same results otherwise. */
int cb_peer_identify_pidfd(const struct ucred *cred, int pidfd, uint64_t pidfd_ino, cb_exe_cache *cache,
                           unsigned what, cb_peer *ret) __attribute__((warn_unused_result));

/* The pidfs inode of pidfd (fstat): one per process, never reused while
 * the system runs (Linux >= 6.9, 64-bit ino_t), so what is fixed for a
 * process's life can be kept under it (peer_proc.c).  0 when the kernel
 * has no pidfs (pidfds then share one inode) or pidfd is -1: nothing is
 * kept then.  Pass it as pidfd_ino / writer_ino below, or 0. */
uint64_t cb_pidfd_ino(int pidfd);

/* May the pid a writer put in its SCM_CREDENTIALS be trusted?  Inside its
 * own pid namespace a process holding CAP_SYS_ADMIN over that namespace's
 * owner (any user after `unshare -Urp`) may name any pid of it, and the
 * kernel's SCM_PIDFD follows the claim.  0 when writer is in our pid
 * namespace (naming another's pid there takes real privilege), or is the
 * connecting process (SO_PEERCRED, `connector`) and every pid namespace
 * between it and ours is owned by our user namespace (a root-made
 * container); else -EPERM with cb_error_set.  -ESRCH when gone.  Racy by
 * itself: the caller checks liveness through a pidfd afterwards.
 * writer_pidfd (its SCM_PIDFD, or -1) and writer_ino (cb_pidfd_ino, or
 * 0): a process found in our pid namespace is remembered under its pidfs
 * inode once its pidfd shows it alive (a process's pid namespace never
 * changes), and its next requests skip the /proc lookup. */
int cb_peer_writer_trusted(pid_t writer, int writer_pidfd, uint64_t writer_ino, pid_t connector)
        __attribute__((warn_unused_result));

/* Is the process pinned by p->pidfd still running?  1 yes, 0 no (its pidfd
 * polls readable once it has exited, zombie or reaped). */
int cb_peer_alive(const cb_peer *p);

/* Is pid in the broker's mount namespace?  (Else the path its
 * /proc/PID/exe reads as is a name in another file tree: any uid can
 * unshare -Urm and mount any program at /usr/bin/python3.)  False when it
 * cannot be told. */
bool cb_peer_same_mntns(pid_t pid);

/* The uid a caller's costs are charged to (per-uid connection cap, the
 * budget of recorded refusals): its own uid when it runs in the broker's
 * user namespace; else the owner of the outermost user namespace below the
 * broker's that holds it -- the user who made the namespace.  A user with
 * a subordinate uid range (/etc/subuid, newuidmap: rootless containers)
 * can run processes under 65,536 uids; charged one by one, they would
 * multiply every per-uid bound.  CB_PEER_ACCOUNT_UNKNOWN (one shared
 * bucket) when pid's namespace cannot be read (it exited).  One stat for
 * a caller in the broker's namespace. */
#define CB_PEER_ACCOUNT_UNKNOWN ((uid_t)-2)
uid_t cb_peer_account_uid(pid_t pid, uid_t uid);

/* Close the pidfd; p may then be reused. */
void cb_peer_done(cb_peer *p);

/* The cached SHA-256 of the executable whose stat is *st (p->exe_st), into
 * out: 1, or 0 when it is not cached. */
int cb_exe_cache_get(cb_exe_cache *c, const struct stat *st, unsigned char out[32]);

/* Hashing off the serving threads (peer_hash.c).  Workers started once;
 * cb_exe_hasher_stop() finishes what runs, cancels what waits (its
 * callbacks get -ECANCELED) and joins them. */
int cb_exe_hasher_start(unsigned threads) __attribute__((warn_unused_result));
void cb_exe_hasher_stop(void);

/* Queue the hash of p's executable (p identified with CB_PEER_SKIP_HASH,
 * exe_known or not): a worker opens /proc/<pid>/exe, checks it is still
 * the file p->exe_st describes, hashes it within the per-uid budget,
 * caches it when the file is old enough, and calls fn(ud, r, sha) on its
 * own thread (r 0 or -errno; the message in cb_error_last() of that
 * thread is copied into the error text passed along).  Returns 0 when
 * queued, -EFBIG (larger than CB_EXE_HASH_MAX), -EBUSY (this uid has a
 * hash waiting or running, or its bytes-per-minute budget is spent, or
 * the queue is full), each with cb_error_set. */
typedef void (*cb_exe_hash_done_fn)(void *ud, int r, const unsigned char sha[32], const char *error);
int cb_exe_hash_submit(cb_exe_cache *cache, const cb_peer *p, cb_exe_hash_done_fn fn, void *ud)
        __attribute__((warn_unused_result));

/* Hash an open regular file (SHA-256) into out; -errno. */
int cb_sha256_fd(int fd, unsigned char out[32]);
