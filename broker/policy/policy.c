/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files and matching: load a file (ownership, mode and size checked
 * on the opened file), then answer "which grant lets this peer do that".
 * Parsing lives in policy_parse.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "error.h"
#include "policy.h"
#include "policy_internal.h"
#include "store.h"

int cb_policy_load(const char *path, cb_policy **ret) {
        struct stat st;
        char *buf = NULL;
        size_t len = 0;
        int fd, r;

        /* Symlinks are followed on purpose (config management often links
         * /etc/credbroker/policy.json elsewhere); the checks below apply to
         * the file actually opened.  O_NONBLOCK: opening a FIFO must not hang. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                return cb_error_set(r, "policy %s: %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                r = cb_error_set(r, "policy %s: %s", path, strerror(-r));
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = cb_error_set(-EPERM, "policy %s is not a regular file: refusing it", path);
                goto out;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                r = cb_error_set(-EPERM, "policy %s is writable by group/others (mode %04o): refusing it", path,
                                 (unsigned)(st.st_mode & 07777));
                goto out;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                r = cb_error_set(-EPERM, "policy %s is owned by uid %u, not root or uid %u: refusing it", path,
                                 (unsigned)st.st_uid, (unsigned)geteuid());
                goto out;
        }
        if (st.st_size > CB_POLICY_MAX_BYTES) {
                r = cb_error_set(-EFBIG, "policy %s: larger than %d bytes", path, CB_POLICY_MAX_BYTES);
                goto out;
        }
        /* Read up to one byte past the cap: the file may grow after fstat. */
        buf = malloc(CB_POLICY_MAX_BYTES + 1);
        if (!buf) {
                r = oom();
                goto out;
        }
        for (;;) {
                ssize_t k = read(fd, buf + len, CB_POLICY_MAX_BYTES + 1 - len);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        r = cb_error_set(r, "policy %s: read: %s", path, strerror(-r));
                        goto out;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
                if (len > CB_POLICY_MAX_BYTES) {
                        r = cb_error_set(-EFBIG, "policy %s: larger than %d bytes", path, CB_POLICY_MAX_BYTES);
                        goto out;
                }
        }
        r = cb_policy_parse(buf, len, path, ret);
out:
        free(buf);
        close(fd);
        return r;
}

/* ---- matching --------------------------------------------------------- */

static bool client_matches(const client *cl, const cb_peer *peer) {
        if (!cl->sel)
                return false;   /* refused at load; never "match everyone" */
        if ((cl->sel & SEL_UID) && peer->uid != cl->uid)
                return false;
        if ((cl->sel & SEL_GID) && peer->gid != cl->gid)
                return false;
        if (cl->sel & SEL_EXE) {
                struct stat st;

                /* File identity, in our mount namespace, as of now: the
                 * resolved path is stat'ed afresh (an upgrade replaces the
                 * file; a cached inode number could be reused by another
                 * file).  The caller's /proc/PID/exe names its file whatever
                 * namespace it sees it through; the path string it shows is
                 * the caller's to shape (a private bind mount) and is never
                 * compared.  An unlinked binary (exe_known false) never
                 * matches. */
                if (!peer->exe_known || !cl->exe_resolved || stat(cl->exe_resolved, &st) < 0 ||
                    st.st_dev != peer->exe_dev || st.st_ino != peer->exe_ino)
                        return false;
        }
        if ((cl->sel & SEL_SHA256) &&
            (!peer->hash_known || sodium_memcmp(peer->exe_sha256, cl->exe_sha256, sizeof(cl->exe_sha256)) != 0))
                return false;
        if (cl->sel & SEL_CGROUP) {
                size_t n = strnlen(peer->cgroup, sizeof(peer->cgroup));

                if (!peer->cgroup_known || n == sizeof(peer->cgroup))
                        return false;
                if (cl->cgroup_prefix) {
                        /* "/a/b/" + at least one more byte: a descendant of /a/b,
                         * never /a/b itself nor /a/bc. */
                        if (n <= cl->cgroup_len || memcmp(peer->cgroup, cl->cgroup, cl->cgroup_len) != 0)
                                return false;
                } else if (n != cl->cgroup_len || memcmp(peer->cgroup, cl->cgroup, n) != 0) {
                        return false;
                }
        }
        return true;
}

const cb_grant *cb_policy_find_grant(const cb_policy *p, const cb_peer *peer, const char *secret, unsigned use,
                                     const char **ret_client) {
        if (!p || !peer || !secret)
                return NULL;
        if (cb_policy_is_canary(p, secret))
                return NULL; /* never granted, even by "*" */
        /* Exactly one known bit: a caller passing several must not get a
         * grant that covers only one of them. */
        if (use == 0 || (use & (use - 1)) || (use & ~(unsigned)USE_ALL))
                return NULL;
        /* The first matching grant, unless a later one that also matches
         * asks for approval: approval wins, whatever the order. */
        const grant *first = NULL;
        for (size_t i = 0; i < p->n_grants; i++) {
                const grant *gr = &p->grants[i];

                if (!(gr->g.uses & use))
                        continue;
                if (strcmp(gr->g.secret, "*") != 0 && strcmp(gr->g.secret, secret) != 0)
                        continue;
                if (!client_matches(&p->clients[gr->client], peer))
                        continue;
                if (!first)
                        first = gr;
                if (gr->g.approval) {
                        first = gr;
                        break;
                }
        }
        if (first && ret_client)
                *ret_client = first->g.client;
        return first ? &first->g : NULL;
}

const cb_grant *cb_policy_client_grant(const cb_policy *p, const char *name, const char *secret, unsigned use) {
        if (!p || !name || !secret || use == 0 || (use & (use - 1)) || (use & ~(unsigned)USE_ALL))
                return NULL;
        if (cb_policy_is_canary(p, secret))
                return NULL;
        const cb_grant *first = NULL;
        for (size_t i = 0; i < p->n_grants; i++) {
                const grant *gr = &p->grants[i];

                if ((gr->g.uses & use) && strcmp(gr->g.client, name) == 0 &&
                    (strcmp(gr->g.secret, "*") == 0 || strcmp(gr->g.secret, secret) == 0)) {
                        if (!first)
                                first = &gr->g;
                        if (gr->g.approval)
                                return &gr->g; /* approval wins, as in cb_policy_find_grant() */
                }
        }
        return first;
}

size_t cb_policy_match_clients(const cb_policy *p, const cb_peer *peer, const char **out, size_t n) {
        size_t k = 0;

        if (!p || !peer)
                return 0;
        for (size_t i = 0; i < p->n_clients; i++)
                if (client_matches(&p->clients[i], peer)) {
                        if (out && k < n)
                                out[k] = p->clients[i].name;
                        k++;
                }
        return k;
}

/* Only the primary gid is consulted: SO_PEERCRED reports just that, and
 * reading supplementary groups from /proc would be racy and could be
 * shaped by the caller (setgroups before connecting).  An admin group
 * therefore has to be the admin's primary group. */
bool cb_policy_is_admin(const cb_policy *p, uid_t uid, gid_t gid) {
        if (!p)
                return false;
        for (size_t i = 0; i < p->n_admin_uids; i++)
                if (p->admin_uids[i] == uid)
                        return true;
        for (size_t i = 0; i < p->n_admin_gids; i++)
                if (p->admin_gids[i] == gid)
                        return true;
        return false;
}

bool cb_policy_has_client(const cb_policy *p, const char *name) {
        return p && name && cb_policy_find_client(p, name, NULL);
}

bool cb_policy_uses_cgroup(const cb_policy *p) {
        return p && p->uses_cgroup;
}

size_t cb_policy_n_clients(const cb_policy *p) {
        return p ? p->n_clients : 0;
}

size_t cb_policy_n_grants(const cb_policy *p) {
        return p ? p->n_grants : 0;
}

unsigned cb_policy_uid_needs(const cb_policy *p, uid_t uid, gid_t gid, const char **ret_client) {
        unsigned need = 0;

        if (!p)
                return 0;
        for (size_t i = 0; i < p->n_clients; i++) {
                const client *cl = &p->clients[i];

                if (!cl->sel || ((cl->sel & SEL_UID) && cl->uid != uid) || ((cl->sel & SEL_GID) && cl->gid != gid))
                        continue;
                if (!need && ret_client)
                        *ret_client = cl->name;
                need |= CB_NEED_SELECTED;
                if (cl->sel & SEL_CGROUP)
                        need |= CB_NEED_CGROUP;
        }
        return need;
}

bool cb_policy_uid_selectable(const cb_policy *p, uid_t uid, const char **ret_client) {
        if (!p)
                return false;
        for (size_t i = 0; i < p->n_clients; i++) {
                const client *cl = &p->clients[i];

                if (!cl->sel || ((cl->sel & SEL_UID) && cl->uid != uid))
                        continue;
                if (ret_client)
                        *ret_client = cl->name;
                return true;
        }
        return false;
}

bool cb_policy_client_may_select(const cb_policy *p, const char *name, uid_t uid) {
        if (!p || !name)
                return false;
        for (size_t i = 0; i < p->n_clients; i++) {
                const client *cl = &p->clients[i];

                if (strcmp(cl->name, name) == 0)
                        return cl->sel && (!(cl->sel & SEL_UID) || cl->uid == uid);
        }
        return false;
}

bool cb_policy_client_exe(const cb_policy *p, size_t i, const char **ret_name, const char **ret_exe,
                          const char **ret_resolved) {
        if (!p || i >= p->n_clients || !(p->clients[i].sel & SEL_EXE))
                return false;
        *ret_name = p->clients[i].name;
        *ret_exe = p->clients[i].exe;
        *ret_resolved = p->clients[i].exe_resolved;
        return true;
}

bool cb_policy_client_exe_pinned(const cb_policy *p, size_t i) {
        return p && i < p->n_clients && (p->clients[i].sel & SEL_SHA256);
}

size_t cb_policy_n_admin_uids(const cb_policy *p) {
        return p ? p->n_admin_uids : 0;
}

uid_t cb_policy_admin_uid(const cb_policy *p, size_t i) {
        return p && i < p->n_admin_uids ? (uid_t)p->admin_uids[i] : (uid_t)-1;
}
