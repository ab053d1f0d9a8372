/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the broker/identity/peer.c tests share: real sockets in the test directory
 * and children that connect to them as other binaries or other uids.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* Where a spawned child failed (spawn_peer's *ret_stage). */
#define ST_READY   0   /* child connected and is pausing (no exec) */
#define ST_SETUP   1
#define ST_CONNECT 2
#define ST_EXEC    3

typedef struct spawn_opts {
        bool drop;             /* setgroups/setgid/setuid before connecting */
        uid_t uid;
        gid_t gid;
        char *const *argv;     /* exec this after connecting, or NULL: pause() */
} spawn_opts;

void sha256_file(const char *path, unsigned char out[32]);
void copy_file(const char *from, const char *to, mode_t mode);
void self_cgroup(char *out, size_t cap);
void sockaddr_for(const char *path, struct sockaddr_un *sa);
int listen_at(const char *name, char *ret_path, size_t cap);
pid_t spawn_peer(const char *sock, const spawn_opts *o, int *ret_stage, int *ret_errno);
int spawn_ok(int lfd, const char *sock, const spawn_opts *o, pid_t *ret_pid);
void kill_reap(pid_t pid);
void need_root(void);
unsigned read_sysctl(const char *path, unsigned dflt);
