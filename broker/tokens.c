/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "policy.h"
#include "secmem.h"
#include "tokens.h"

#define HASH_LEN 32

struct entry {
        unsigned char hash[HASH_LEN]; /* keyed hash of the token text */
        bool used_slot;               /* occupied (or a tombstone when !live) */
        bool live;
        int pidfd;                    /* process binding, -1 if none */
        cb_token_info info;
};

struct cb_tokens {
        cb_secbuf *key;   /* BLAKE2b key for token hashes, per process */
        struct entry *tab;
        size_t cap;       /* power of two */
        size_t live, slots_used;
        size_t max_total, max_per_uid;
        uint64_t last_sweep;
};

static uint64_t now_s(void) {
        return (uint64_t)time(NULL);
}

cb_tokens *cb_tokens_new(size_t max_total, size_t max_per_uid) {
        cb_tokens *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->max_total = max_total ? max_total : CB_TOKENS_MAX_DEFAULT;
        t->max_per_uid = max_per_uid ? max_per_uid : CB_TOKENS_PER_UID_DEFAULT;
        t->key = cb_secbuf_new(crypto_generichash_KEYBYTES);
        t->cap = 1024;
        t->tab = calloc(t->cap, sizeof(*t->tab));
        if (!t->key || !t->tab) {
                cb_tokens_free(t);
                return NULL;
        }
        randombytes_buf(cb_secbuf_data(t->key), crypto_generichash_KEYBYTES);
        return t;
}

static void drop(struct entry *e) {
        if (e->pidfd >= 0)
                close(e->pidfd);
        e->pidfd = -1;
        e->live = false;
        sodium_memzero(e->hash, sizeof(e->hash));
}

void cb_tokens_free(cb_tokens *t) {
        if (!t)
                return;
        if (t->tab) {
                for (size_t i = 0; i < t->cap; i++)
                        if (t->tab[i].live)
                                drop(&t->tab[i]);
                free(t->tab);
        }
        cb_secbuf_free(t->key);
        free(t);
}

static void hash_token(const cb_tokens *t, const char *tok, size_t len, unsigned char out[HASH_LEN]) {
        crypto_generichash(out, HASH_LEN, (const unsigned char *)tok, len, cb_secbuf_data(t->key),
                           crypto_generichash_KEYBYTES);
}

static size_t slot_of(const cb_tokens *t, const unsigned char h[HASH_LEN]) {
        uint64_t v;

        memcpy(&v, h, sizeof(v)); /* the hash is keyed and uniform */
        return (size_t)v & (t->cap - 1);
}

static struct entry *lookup(cb_tokens *t, const unsigned char h[HASH_LEN]) {
        for (size_t i = slot_of(t, h), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
                struct entry *e = &t->tab[i];

                if (!e->used_slot)
                        return NULL;
                if (e->live && sodium_memcmp(e->hash, h, HASH_LEN) == 0)
                        return e;
        }
        return NULL;
}

/* Rebuild at new_cap, dropping tombstones. */
static int rehash(cb_tokens *t, size_t new_cap) {
        struct entry *old = t->tab, *nt = calloc(new_cap, sizeof(*nt));
        size_t old_cap = t->cap;

        if (!nt)
                return -ENOMEM;
        t->tab = nt;
        t->cap = new_cap;
        t->slots_used = 0;
        for (size_t i = 0; i < old_cap; i++) {
                if (!old[i].live)
                        continue;
                size_t j = slot_of(t, old[i].hash);
                while (t->tab[j].used_slot)
                        j = (j + 1) & (t->cap - 1);
                t->tab[j] = old[i];
                t->slots_used++;
        }
        sodium_memzero(old, old_cap * sizeof(*old));
        free(old);
        return 0;
}

static size_t count_uid(const cb_tokens *t, uid_t uid) {
        size_t n = 0;

        for (size_t i = 0; i < t->cap; i++)
                n += t->tab[i].live && t->tab[i].info.uid == uid;
        return n;
}

int cb_tokens_issue(cb_tokens *t, const cb_peer *peer, const char *client, const char *secret, uint32_t version,
                    unsigned uses, uint32_t ttl, uint32_t max_uses, bool bind_process,
                    char ret_token[CB_TOKEN_LEN + 1], const cb_token_info **ret_info) {
        unsigned char h[HASH_LEN], acc[12];
        struct entry *e;
        int r;

        if (strlen(secret) >= sizeof(e->info.secret) || strlen(client) >= sizeof(e->info.client))
                return cb_error_set(-EINVAL, "secret or client name too long");
        /* Expired and orphaned entries go at most once a second: a sweep
         * is O(table) with a syscall per process-bound token. */
        if (now_s() != t->last_sweep)
                cb_tokens_sweep(t, now_s());
        if (t->live >= t->max_total)
                return cb_error_set(-ENOSPC, "the broker holds the maximum of %zu live tokens", t->max_total);
        /* The per-uid cap bounds what one (possibly hijacked) tool can pin;
         * counting is O(table) but issuing is not the hot path at this size. */
        if (t->live >= t->max_per_uid && count_uid(t, peer->uid) >= t->max_per_uid)
                return cb_error_set(-ENOSPC, "uid %u holds the maximum of %zu live tokens", (unsigned)peer->uid,
                                    t->max_per_uid);
        if ((t->slots_used + 1) * 2 > t->cap && (r = rehash(t, t->live * 4 > t->cap ? t->cap * 2 : t->cap)) < 0)
                return r;
        cb_token_generate(ret_token);
        hash_token(t, ret_token, CB_TOKEN_LEN, h);
        size_t i = slot_of(t, h);
        while (t->tab[i].live)
                i = (i + 1) & (t->cap - 1);
        e = &t->tab[i];
        if (!e->used_slot)
                t->slots_used++;
        memset(e, 0, sizeof(*e));
        e->used_slot = true;
        e->live = true;
        e->pidfd = -1;
        memcpy(e->hash, h, HASH_LEN);
        randombytes_buf(acc, sizeof(acc));
        memcpy(e->info.accessor, "cba_", 4);
        sodium_bin2hex(e->info.accessor + 4, sizeof(e->info.accessor) - 4, acc, sizeof(acc));
        snprintf(e->info.secret, sizeof(e->info.secret), "%s", secret); /* lengths checked above */
        snprintf(e->info.client, sizeof(e->info.client), "%s", client);
        e->info.version = version;
        e->info.uses = uses;
        e->info.issued = now_s();
        e->info.expires = e->info.issued + ttl;
        e->info.max_uses = max_uses;
        e->info.uid = peer->uid;
        memcpy(e->info.exe_sha256, peer->exe_sha256, 32);
        if (bind_process) {
                e->info.bound_process = true;
                e->info.pid = peer->pid;
                e->info.start_time = peer->start_time;
                e->pidfd = peer->pidfd >= 0 ? fcntl(peer->pidfd, F_DUPFD_CLOEXEC, 3) : -1;
                if (e->pidfd < 0) {
                        drop(e); /* never counted live; the slot stays a tombstone */
                        cb_wipe(ret_token, CB_TOKEN_LEN + 1);
                        return cb_error_set(-ESRCH, "cannot pin the calling process for a process-bound token");
                }
        }
        t->live++;
        if (ret_info)
                *ret_info = &e->info;
        return 0;
}

static bool process_gone(const struct entry *e) {
        return e->pidfd < 0 || syscall(SYS_pidfd_send_signal, e->pidfd, 0, NULL, 0) != 0;
}

static int find(cb_tokens *t, const char *tok, size_t len, struct entry **ret) {
        unsigned char h[HASH_LEN];
        int r = cb_token_check(tok, len);
        struct entry *e;

        if (r < 0)
                return cb_error_set(-EINVAL, "not a credbroker token");
        hash_token(t, tok, len, h);
        e = lookup(t, h);
        if (!e)
                return cb_error_set(-ENOENT, "unknown or revoked token");
        if (e->info.expires <= now_s()) {
                char acc[CB_ACCESSOR_LEN + 1];
                memcpy(acc, e->info.accessor, sizeof(acc));
                drop(e);
                t->live--;
                return cb_error_set(-ETIME, "token %s expired", acc);
        }
        *ret = e;
        return 0;
}

int cb_tokens_peek(cb_tokens *t, const char *token, size_t len, const cb_token_info **ret_info) {
        struct entry *e;
        int r = find(t, token, len, &e);

        if (r < 0)
                return r;
        *ret_info = &e->info;
        return 0;
}

int cb_tokens_use(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                  const cb_token_info **ret_info) {
        struct entry *e;
        int r = find(t, token, len, &e);

        if (r < 0)
                return r;
        if (e->info.uid != peer->uid)
                return cb_error_set(-EPERM, "token %s belongs to uid %u, presented by uid %u", e->info.accessor,
                                    (unsigned)e->info.uid, (unsigned)peer->uid);
        if (sodium_memcmp(e->info.exe_sha256, peer->exe_sha256, 32) != 0)
                return cb_error_set(-EPERM, "token %s was issued to another executable", e->info.accessor);
        if (e->info.bound_process) {
                if (process_gone(e)) {
                        char acc[CB_ACCESSOR_LEN + 1];
                        memcpy(acc, e->info.accessor, sizeof(acc));
                        drop(e);
                        t->live--;
                        return cb_error_set(-ESRCH, "token %s was bound to a process that has exited", acc);
                }
                if (e->info.pid != peer->pid || e->info.start_time != peer->start_time)
                        return cb_error_set(-ESRCH, "token %s is bound to another process", e->info.accessor);
        }
        if (!(e->info.uses & use))
                return cb_error_set(-EPERM, "token %s does not carry this use", e->info.accessor);
        if (e->info.max_uses && e->info.used >= e->info.max_uses)
                return cb_error_set(-EDQUOT, "token %s used up (%u uses)", e->info.accessor, e->info.max_uses);
        e->info.used++;
        *ret_info = &e->info;
        return 0;
}

static size_t revoke_where(cb_tokens *t, const char *field_off_match, size_t off) {
        size_t n = 0;

        for (size_t i = 0; i < t->cap; i++) {
                struct entry *e = &t->tab[i];

                if (e->live && strcmp((const char *)&e->info + off, field_off_match) == 0) {
                        drop(e);
                        t->live--;
                        n++;
                }
        }
        return n;
}

size_t cb_tokens_revoke_accessor(cb_tokens *t, const char *accessor) {
        return revoke_where(t, accessor, offsetof(cb_token_info, accessor));
}

size_t cb_tokens_revoke_secret(cb_tokens *t, const char *secret) {
        return revoke_where(t, secret, offsetof(cb_token_info, secret));
}

size_t cb_tokens_revoke_client(cb_tokens *t, const char *client) {
        return revoke_where(t, client, offsetof(cb_token_info, client));
}

size_t cb_tokens_sweep(cb_tokens *t, uint64_t now) {
        size_t n = 0;

        t->last_sweep = now;
        for (size_t i = 0; i < t->cap; i++) {
                struct entry *e = &t->tab[i];

                /* Expired entries linger a minute so their holder hears
                 * "expired" rather than "unknown"; they are refused anyway. */
                if (e->live && (e->info.expires + 60 <= now || (e->info.bound_process && process_gone(e)))) {
                        drop(e);
                        t->live--;
                        n++;
                }
        }
        return n;
}

size_t cb_tokens_count(const cb_tokens *t) {
        return t->live;
}
