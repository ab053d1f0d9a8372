/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy parser and matcher.  Any input either parses or fails with -EINVAL
 * and a message naming the origin; a parsed policy is then queried for a few
 * fixed peers, and every answer must be consistent:
 *
 *   - a returned grant covers the requested secret and use, its client is
 *     defined and is among the clients the peer matches;
 *   - a peer matching no client gets no grant;
 *   - a peer whose executable is " (deleted)" matches a subset of what the
 *     same peer with the live executable matches (an exe selector never
 *     matches a deleted binary);
 *   - grant fields are within their documented ranges.
 *
 * Seeds use the peers' values (uid 1001, "/usr/bin/python3.11",
 * SHA-256("abc"), the agent.scope cgroup) so the fuzzer reaches matches.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_PEERS 4
#define MATCH_MAX 16

static cb_peer peers[N_PEERS];
static bool peers_ready;

static void peer_set(cb_peer *p, uid_t uid, gid_t gid, const char *exe, const char *content, const char *cgroup) {
        memset(p, 0, sizeof(*p));
        p->uid = uid;
        p->gid = gid;
        p->pid = 1234;
        p->pidfd = -1;
        strcpy(p->exe_path, exe);
        crypto_hash_sha256(p->exe_sha256, (const unsigned char *)content, strlen(content));
        sodium_bin2hex(p->exe_sha256_hex, sizeof(p->exe_sha256_hex), p->exe_sha256, sizeof(p->exe_sha256));
        strcpy(p->cgroup, cgroup);
}

static void peers_init(void) {
        if (peers_ready)
                return;
        peer_set(&peers[0], 1001, 1001, "/usr/bin/python3.11", "abc", "/user.slice/user-1001.slice/agent.scope");
        /* Same as peers[0], but the binary was replaced: see the subset check. */
        peer_set(&peers[1], 1001, 1001, "/usr/bin/python3.11 (deleted)", "abc",
                 "/user.slice/user-1001.slice/agent.scope");
        peer_set(&peers[2], 0, 0, "/bin/sh", "sh", "/");
        peer_set(&peers[3], 1002, 1001, "/usr/bin/python3.11", "abd", "");
        peers_ready = true;
}

static bool in_list(const char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

static void check_grant(const cb_policy *p, const cb_peer *peer, const char *secret, unsigned use,
                        const char *const *matched, size_t n_matched) {
        const char *client = NULL;
        const cb_grant *g = cb_policy_find_grant(p, peer, secret, use, &client);

        if (!g)
                return;
        if (!n_matched || !client || client != g->client || !cb_policy_has_client(p, g->client))
                abort();
        /* matched holds all of them: callers pass n_matched <= MATCH_MAX only then. */
        if (n_matched <= MATCH_MAX && !in_list(matched, n_matched, g->client))
                abort();
        if (!(g->uses & use) || (g->uses & ~(unsigned)(CB_USE_PROXY | CB_USE_REDEEM | CB_USE_SCAN)))
                abort();
        if (strcmp(g->secret, "*") != 0 && strcmp(g->secret, secret) != 0)
                abort();
        if (g->max_ttl < 1 || g->max_ttl > CB_TTL_MAX || g->max_uses > (UINT32_C(1) << 31))
                abort();
        if (g->rate_n > 1000000 || (g->rate_n == 0) != (g->rate_window == 0))
                abort();
        if (g->rate_window != 0 && g->rate_window != 1 && g->rate_window != 60 && g->rate_window != 3600)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const secrets[] = { "github-token", "k", "s", "a", "*" };
        static const unsigned uses[] = { CB_USE_PROXY, CB_USE_REDEEM, CB_USE_SCAN };
        const char *matched[N_PEERS][MATCH_MAX];
        size_t n_matched[N_PEERS];
        cb_policy *p = NULL;
        int r;

        peers_init();
        if (size > CB_POLICY_MAX_BYTES) {
                if (cb_policy_parse((const char *)data, size, "fuzz", &p) != -EFBIG || p)
                        abort();
                return 0;
        }
        r = cb_policy_parse((const char *)data, size, "fuzz", &p);
        if (r < 0) {
                if ((r != -EINVAL && r != -ENOMEM) || p || strncmp(cb_error_last(), "fuzz", 4) != 0)
                        abort();
                return 0;
        }
        if (!p || cb_policy_n_clients(p) > CB_POLICY_MAX_CLIENTS || cb_policy_n_grants(p) > CB_POLICY_MAX_GRANTS)
                abort();

        for (size_t i = 0; i < N_PEERS; i++) {
                size_t total = cb_policy_match_clients(p, &peers[i], matched[i], MATCH_MAX);

                if (total != cb_policy_match_clients(p, &peers[i], NULL, 0) || total > cb_policy_n_clients(p))
                        abort();
                n_matched[i] = total;
                for (size_t j = 0; j < total && j < MATCH_MAX; j++)
                        if (!cb_policy_has_client(p, matched[i][j]))
                                abort();
                for (size_t s = 0; s < sizeof(secrets) / sizeof(*secrets); s++) {
                        for (size_t u = 0; u < sizeof(uses) / sizeof(*uses); u++)
                                check_grant(p, &peers[i], secrets[s], uses[u], matched[i], total);
                        /* Not exactly one use bit: never a grant. */
                        if (cb_policy_find_grant(p, &peers[i], secrets[s], CB_USE_PROXY | CB_USE_REDEEM, NULL) ||
                            cb_policy_find_grant(p, &peers[i], secrets[s], 0, NULL))
                                abort();
                }
        }
        /* A deleted executable matches a subset, in the same order. */
        if (n_matched[1] > n_matched[0])
                abort();
        if (n_matched[0] <= MATCH_MAX) {
                size_t k = 0;

                for (size_t j = 0; j < n_matched[1]; j++, k++) {
                        while (k < n_matched[0] && strcmp(matched[0][k], matched[1][j]) != 0)
                                k++;
                        if (k == n_matched[0])
                                abort();
                }
        }
        (void)cb_policy_is_admin(p, 0, 0);
        (void)cb_policy_is_admin(p, 1001, 1001);
        (void)cb_policy_has_client(p, "github-tool");
        cb_policy_free(p);
        return 0;
}
