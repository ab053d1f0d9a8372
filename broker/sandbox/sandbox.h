/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sandbox listeners (issue 17): `credbroker sandbox` creates a listening
 * TCP socket on 127.0.0.1 inside the sandbox's new network namespace and
 * hands it to the daemon over $RUN_DIR/sandbox.sock (SCM_RIGHTS); the
 * daemon serves the proxy on it, and every connection on it is the
 * sandbox's: nothing outside that network namespace can reach it.
 *
 * Contract:
 * - cb_sandbox_start() listens on the socket path it is given (0666: any
 *   local process may connect; identity and policy decide) and runs one
 *   acceptor thread.  Each hand-over is served by a thread of its own
 *   (at most CB_SANDBOX_MAX in all, CB_SANDBOX_PER_UID per uid), which
 *   does everything blocking that the launcher can cause -- reading its
 *   request, receiving and checking the descriptor, identifying it,
 *   closing what it sent -- so a launcher can hold up only itself.
 * - The hand-over is authenticated as a tools.sock request is: the
 *   connecting process's SO_PEERCRED/pidfd identity (cb_peer, executable
 *   hash included), and ops->authorize (main.c: the policy) must accept
 *   it for the client it names.
 * - The descriptor must be a listening AF_INET stream socket bound to
 *   127.0.0.1 that is NOT in the daemon's own network namespace (looked up
 *   by inode in the daemon's sock_diag table: found there means refused).
 * - A sandbox lives exactly as long as the launcher's connection: EOF (the
 *   launcher exited, SIGKILL included) tears it down -- ops->unserve, an
 *   audit record, out of the table.
 * - The listener stays the sandbox thread's: each connection gets a
 *   thread of its own (at most CB_SANDBOX_CONNS per sandbox) that peeks at
 *   its first bytes: "CONNECT " is a tunnel (tunnel.c: egress.allow, the
 *   SSRF rules on the address dialled, the ClientHello's SNI), anything
 *   else goes to the proxy's server (ops->add_conn).
 * - A request refused on a sandbox's listener (http/ calls
 *   cb_sandbox_note_refusal, on a serving thread: it takes no lock of
 *   main.c's; the client's alert_on_deny is read when the sandbox opens)
 *   raises one "egress_denied" alert per sandbox,
 *   at the first refusal; the rest are counted into "sandbox_close"
 *   ("refused") -- coalesced per sandbox, so a probing tool cannot flood
 *   the operator.  A refusal by the outbound leak guard raises one "leak"
 *   alert per sandbox too (cb_sandbox_note_leak), apart from those.  Each
 *   refusal has its own audit record (http/), up to the launching user's
 *   budget of recorded refusals (ops->refusal_quiet), shared by every
 *   route of its sandboxes and its tools.sock requests.
 * - Records: "sandbox_open" (queued before the listener is served; not
 *   waited for) and "sandbox_close" in the audit log, through ops->audit;
 *   cb_sandbox_list_json() for status.
 * This folder reaches http/ and the policy only through ops (main.c wires
 * them): no arrow up.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#include "peer.h"

#define CB_SANDBOX_MAX 64
#define CB_SANDBOX_PER_UID 16
#define CB_SANDBOX_PENDING_PER_UID 2 /* hand-overs not yet past the policy, per user */
#define CB_SANDBOX_REQ_MAX 4096   /* the launcher's request line, bytes */
#define CB_SANDBOX_CMD_MAX 256    /* the command line kept for display */
#define CB_SANDBOX_MAGIC 0x63627362u
#define CB_SANDBOX_CONNS 64       /* connections being peeked at or tunnelled, per sandbox */
#define CB_SANDBOX_ALLOW_MAX 32   /* --allow-host entries */
#define CB_SANDBOX_ALLOW_LEN 260

typedef struct cb_sandbox {
        uint32_t magic;           /* CB_SANDBOX_MAGIC: http/ tells a sandbox's server by it */
        char id[20];              /* "sb_" + 16 hex digits */
        uid_t uid;                /* the launcher's */
        uid_t acct;               /* whom its costs are charged to (cb_peer_account_uid: held bodies, refusals) */
        gid_t gid;
        pid_t launcher_pid;
        char client[65];
        char cmd[CB_SANDBOX_CMD_MAX + 1]; /* as the launcher says it (display and audit only) */
        char listen[64];          /* "127.0.0.1:PORT" inside the sandbox */
        /* --allow-host: the launcher's narrowing of its client's
         * egress.allow ("host" or "host:port"; none: no narrowing). */
        char allow[CB_SANDBOX_ALLOW_MAX][CB_SANDBOX_ALLOW_LEN + 1];
        unsigned n_allow;
        bool alert_on_deny;       /* the client's egress.alert_on_deny, read at the start (no lock held) */
        uint64_t started;         /* unix seconds */
        uint64_t connections;     /* accepted on its listener (atomic) */
        uint64_t refused;         /* requests refused on its listener (atomic) */
        uint64_t leaks;           /* of those, by the outbound leak guard (atomic) */
        uint64_t tunnels;         /* CONNECT tunnels opened (atomic) */
} cb_sandbox;

typedef struct cb_sandbox_ops {
        /* May *peer open a sandbox as client `want` ("" = the first client
         * that selects it)?  0 and the client's name in ret_client, or a
         * negative errno with cb_error_set (the launcher is told). */
        int (*authorize)(const cb_peer *peer, const char *want, char ret_client[65]);
        /* A server of the proxy for sb, without a listening socket of its
         * own (connections come through add_conn): a handle, or NULL with
         * cb_error_set. */
        void *(*serve)(cb_sandbox *sb);
        /* Hand it an accepted connection (taken: closed on failure). */
        int (*add_conn)(void *handle, int fd);
        /* CONNECT tunnels: may sb's client go to host:port (its
         * egress.allow), and does a refusal alert (alert_on_deny)? */
        bool (*egress_allows)(const char *client, const char *host, unsigned port);
        bool (*egress_alert)(const char *client);
        /* Stop serving (the sandbox is gone); returns once nothing of sb is
         * used any more. */
        void (*unserve)(void *handle);
        /* Queue an audit record (not taken; main.c: under its lock). */
        void (*audit)(json_t *o);
        /* Raise an alert of kind with event (not taken; main.c). */
        void (*alert)(const char *kind, json_t *event);
        /* The outbound leak guard: a reference to the live matcher (every
         * live secret value, tokens), dropped with cb_matcher_free(), or
         * NULL when it cannot be had (forwarding then fails closed). */
        struct cb_matcher *(*matcher)(void);
        /* The per-uid budget of recorded refusals (http/'s, --refusals-recorded):
         * true when this refusal of acct's (uid: for its record) is over it
         * -- answered 429 and not recorded one by one (NULL: every one is). */
        bool (*refusal_quiet)(uid_t acct, uid_t uid);
        /* The executable hash cache identities use (may be NULL). */
        cb_exe_cache *exe_cache;
} cb_sandbox_ops;

/* Listen on path and start the acceptor.  0 or a negative errno (with
 * cb_error_set). */
int cb_sandbox_start(const char *path, const cb_sandbox_ops *ops) __attribute__((warn_unused_result));

/* Stop accepting, tear every sandbox down, join the threads. */
void cb_sandbox_stop(void);

/* The live sandboxes, for status: [{"id","uid","client","cmd","listen",
 * "started","connections"}]. */
json_t *cb_sandbox_list_json(void);

/* A request on sb's listener was refused (status, the route, the reason
 * the caller was given -- never a value or a target: those may carry a
 * token).  The first one of a sandbox raises "egress_denied". */
void cb_sandbox_note_refusal(cb_sandbox *sb, const char *method, const char *route, unsigned status,
                             const char *reason);

/* A request on sb's listener was refused by the outbound leak guard (a
 * live secret value or a token in it; reason names the secret and the
 * form, never the value).  Counted as a refusal, and the first leak of a
 * sandbox raises a "leak" alert of its own -- coalesced per sandbox and
 * per kind, so an egress_denied alert raised before does not hide it
 * (whatever the client's alert_on_deny). */
void cb_sandbox_note_leak(cb_sandbox *sb, const char *route, unsigned status, const char *reason);

/* Is cls (a server's context) a sandbox?  Then it is returned. */
static inline cb_sandbox *cb_sandbox_of(void *cls) {
        cb_sandbox *sb = cls;
        return sb && sb->magic == CB_SANDBOX_MAGIC ? sb : NULL;
}

/* Does the listening socket fd live in another network namespace than
 * ours?  0 yes; -EEXIST it is in ours; -errno.  (sandbox_ns.c) */
int cb_sandbox_listener_foreign(int fd) __attribute__((warn_unused_result));
