/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "policy.h"
#include "secmem.h"
#include "tokens.h"
#include "tombstones.h"

#define HASH_LEN 32

/*
 * The table: a compact open-addressing index (16-byte slots: a tag from the
 * hash and an entry number) over a dense array of entries.  Probing touches
 * only slots, four to a cache line; an entry (~350 bytes) is read once, on
 * a tag match.  Freed entries are wiped and reused through a stack.
 *
 * Entries live in chunks of CHUNK_N that never move: growing adds a chunk
 * (entry numbers stay valid, nothing is copied).  A doubling array copied,
 * wiped and faulted in every live entry again at each doubling: memcpy alone
 * was 3.5 % of perf samples while tests/bench/tokens.sh filled a fresh table
 * (the throughput change was within its run-to-run noise).
 *
 * Only live tokens are in the table, and only they count against the caps:
 * an expired, revoked or orphaned token is dropped at once (at the latest
 * by the next sweep, within a second of its expiry) and leaves a 32-byte
 * record in the tombstone store (tombstones.h), which tells its holder why
 * for a minute.  Before, such entries stayed a minute in the table and
 * counted: 100,000 / (TTL + 60 s) was the most tokens/s the caps allowed.
 *
 * Memory returns after a burst (the sweep, once a second): new entries take
 * the lowest free numbers (the free stack is rebuilt in that order), so the
 * high chunks empty first; empty chunks at the end are unmapped, empty ones
 * in the middle given back with MADV_DONTNEED (their address stays valid),
 * and an index four times larger than it needs is rebuilt smaller.
 *
 * Locking: the table guards itself with one mutex (t->lock), held only for
 * memory work on the table -- a lookup, an insert, a retire, a sweep --
 * and the non-blocking system calls that go with a process-bound entry
 * (a pidfd polled with a zero timeout, closed).  Token text is generated
 * and hashed, and an issuer's pidfd duplicated, before the lock is taken.
 * No pointer into the table leaves it: what a call returns (ret_info) is a
 * copy, this thread's, valid until its next call on a table; a check that
 * is counted later (cb_tokens_count_checked) names its entry by number and
 * hash, so a token revoked or retired in between is refused, never counted
 * in the wrong entry.
 */
#define CHUNK_SHIFT 10
#define CHUNK_N ((size_t)1 << CHUNK_SHIFT)
#define CHUNK_BYTES (CHUNK_N * sizeof(struct entry))
struct entry {
        unsigned char hash[HASH_LEN]; /* keyed hash of the token text */
        bool live;
        int pidfd;                    /* process binding, -1 if none or released */
        uint32_t slot;                /* its index slot while live */
        cb_token_info info;
};

enum { SLOT_EMPTY = 0, SLOT_LIVE, SLOT_DEAD };

struct slot {
        uint64_t tag;                 /* first 8 bytes of the hash */
        uint32_t ent;                 /* index into ents */
        uint32_t state;
};

/* Live tokens per uid, for the per-uid cap (open addressing; an entry
 * whose count fell to 0 stays until the next rebuild). */
struct uid_count {
        uid_t uid;
        uint32_t n;
        uint32_t bound;               /* of which process-bound */
        bool used;
};

struct chunk {
        struct entry *ents;      /* CHUNK_N entries, mmap'd */
        uint32_t used;           /* entries allocated (live, or being issued) */
        bool released;           /* empty, its pages given back (MADV_DONTNEED) */
};

struct cb_tokens {
        pthread_mutex_t lock;    /* guards everything below but key (set at creation) */
        uint64_t revocations;    /* revoke calls so far (cb_tokens_fence) */
        cb_secbuf *key;          /* BLAKE2b key for token hashes, per process */
        struct slot *slots;
        size_t cap, slots_used;  /* power of two; live + dead slots */
        struct chunk *chunks;    /* n_chunks chunks of CHUNK_N entries */
        size_t n_chunks;
        size_t ents_cap, ents_n; /* entries [0..ents_n) have been used; cap = n_chunks * CHUNK_N */
        uint32_t *free_ents;     /* stack of reusable entries (ents_cap long) */
        size_t n_free;
        size_t live;
        struct uid_count *uids;
        size_t uids_cap, uids_used; /* power of two; slots in use */
        size_t max_total, max_per_uid;
        size_t bound, max_bound, max_bound_per_uid;
        uint64_t last_sweep;
        size_t dropped;          /* entries freed since the last sweep compacted */
        cb_tombs *tombs;
};

static struct entry *ent_at(const cb_tokens *t, size_t i) {
        return &t->chunks[i >> CHUNK_SHIFT].ents[i & (CHUNK_N - 1)];
}

/* Whether p is the address of one of t's entries in use, and its number.
 * Addresses are compared as integers: p need not point into the table. */
static bool ent_of_addr(const cb_tokens *t, uintptr_t p, uint32_t *ret_index) {
        for (size_t c = 0; c < t->n_chunks; c++) {
                uintptr_t base = (uintptr_t)t->chunks[c].ents;
                size_t i = (c << CHUNK_SHIFT) + (p - base) / sizeof(struct entry);

                if (p >= base && p - base < CHUNK_BYTES && (p - base) % sizeof(struct entry) == 0 && i < t->ents_n) {
                        *ret_index = (uint32_t)i;
                        return true;
                }
        }
        return false;
}

/* The number of e, an entry of t's. */
static uint32_t ent_index(const cb_tokens *t, const struct entry *e) {
        uint32_t i;

        if (!ent_of_addr(t, (uintptr_t)e, &i))
                abort(); /* not ours: a caller bug, never reached from input */
        return i;
}

static uint64_t now_s(void) {
        return (uint64_t)time(NULL);
}

cb_tokens *cb_tokens_new(size_t max_total, size_t max_per_uid) {
        cb_tokens *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        pthread_mutex_init(&t->lock, NULL);
        t->max_total = max_total ? max_total : CB_TOKENS_MAX_DEFAULT;
        t->max_per_uid = max_per_uid ? max_per_uid : CB_TOKENS_PER_UID_DEFAULT;
        t->max_bound = CB_TOKENS_BOUND_MAX;
        t->max_bound_per_uid = CB_TOKENS_BOUND_PER_UID;
        t->key = cb_secbuf_new(crypto_generichash_KEYBYTES);
        t->cap = 1024;
        t->slots = calloc(t->cap, sizeof(*t->slots));
        t->uids_cap = 64;
        t->uids = calloc(t->uids_cap, sizeof(*t->uids));
        t->tombs = cb_tombs_new(0, 0);
        if (!t->key || !t->slots || !t->uids || !t->tombs) {
                cb_tokens_free(t);
                return NULL;
        }
        randombytes_buf(cb_secbuf_data(t->key), crypto_generichash_KEYBYTES);
        return t;
}

int cb_tokens_limit_tombstones(cb_tokens *t, size_t bytes) {
        cb_tombs *n = cb_tombs_new(bytes, 0);

        if (!n)
                return cb_error_set(-ENOMEM, "out of memory for a tombstone store of %zu bytes", bytes);
        pthread_mutex_lock(&t->lock);
        cb_tombs *old = t->tombs;
        t->tombs = n;
        pthread_mutex_unlock(&t->lock);
        cb_tombs_free(old);
        return 0;
}

void cb_tokens_limit_bound(cb_tokens *t, size_t max_total, size_t max_per_uid) {
        pthread_mutex_lock(&t->lock);
        t->max_bound = max_total ? max_total : CB_TOKENS_BOUND_MAX;
        t->max_bound_per_uid = max_per_uid ? max_per_uid : CB_TOKENS_BOUND_PER_UID;
        pthread_mutex_unlock(&t->lock);
}

/* What a call returns: a copy of the entry, this thread's (no pointer into
 * the table leaves its lock), and the entry a cb_tokens_check found, for
 * cb_tokens_count_checked. */
static _Thread_local cb_token_info ret_copy;
static _Thread_local struct {
        const cb_tokens *t;
        uint32_t ent;
        unsigned char hash[HASH_LEN];
} checked;

static const cb_token_info *copy_out(const cb_token_info *info) {
        ret_copy = *info;
        return &ret_copy;
}

static size_t sweep_locked(cb_tokens *t, uint64_t now);

static uint64_t tag_of(const unsigned char h[HASH_LEN]) {
        uint64_t v;

        memcpy(&v, h, sizeof(v)); /* the hash is keyed and uniform */
        return v;
}

/* Free an entry (live or never counted): close its pidfd, wipe it, mark
 * its index slot dead. */
static void drop(cb_tokens *t, struct entry *e) {
        uint32_t i = ent_index(t, e);

        if (e->pidfd >= 0)
                close(e->pidfd);
        t->slots[e->slot].state = SLOT_DEAD;
        t->free_ents[t->n_free++] = i;
        t->chunks[i >> CHUNK_SHIFT].used--;
        t->dropped++;
        sodium_memzero(e, sizeof(*e));
        e->pidfd = -1;
}

static size_t uid_slot(const struct uid_count *tab, size_t cap, uid_t uid) {
        size_t i = ((size_t)uid * 0x9E3779B97F4A7C15ull) >> 7 & (cap - 1);

        while (tab[i].used && tab[i].uid != uid)
                i = (i + 1) & (cap - 1);
        return i;
}

/* The live-token counters of uid, created (table grown, zero counts
 * dropped) when create; NULL on ENOMEM or when absent and !create. */
static struct uid_count *uid_counter(cb_tokens *t, uid_t uid, bool create) {
        size_t i = uid_slot(t->uids, t->uids_cap, uid);

        if (t->uids[i].used)
                return &t->uids[i];
        if (!create)
                return NULL;
        if ((t->uids_used + 1) * 2 > t->uids_cap) {
                size_t live = 0, cap = t->uids_cap;
                struct uid_count *nt;

                for (size_t j = 0; j < t->uids_cap; j++)
                        live += t->uids[j].used && t->uids[j].n > 0;  /* bound <= n */
                while ((live + 1) * 4 > cap)
                        cap *= 2;
                nt = calloc(cap, sizeof(*nt));
                if (!nt)
                        return NULL;
                for (size_t j = 0; j < t->uids_cap; j++)
                        if (t->uids[j].used && t->uids[j].n > 0)
                                nt[uid_slot(nt, cap, t->uids[j].uid)] = t->uids[j];
                free(t->uids);
                t->uids = nt;
                t->uids_cap = cap;
                t->uids_used = live;
                i = uid_slot(t->uids, t->uids_cap, uid);
        }
        t->uids[i].used = true;
        t->uids[i].uid = uid;
        t->uids[i].n = 0;
        t->uids[i].bound = 0;
        t->uids_used++;
        return &t->uids[i];
}

/* Drop a live entry and uncount it, leaving a tombstone that says why
 * (CB_TOMB_NONE: none). */
static void retire(cb_tokens *t, struct entry *e, cb_tomb_reason why, uint64_t now) {
        struct uid_count *uc = uid_counter(t, e->info.uid, false);

        if (why != CB_TOMB_NONE) {
                unsigned char acc[CB_TOMBS_ACC_LEN] = { 0 };

                (void)sodium_hex2bin(acc, sizeof(acc), e->info.accessor + 4, CB_ACCESSOR_LEN - 4, NULL, NULL, NULL);
                cb_tombs_put(t->tombs, e->hash, acc, why, now);
        }
        if (e->pidfd >= 0 && e->info.bound_process) {
                t->bound--;
                if (uc && uc->bound > 0)
                        uc->bound--;
        }
        if (uc && uc->n > 0)
                uc->n--;
        drop(t, e);
        t->live--;
}

void cb_tokens_free(cb_tokens *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->ents_n; i++) {
                struct entry *e = ent_at(t, i);

                if (e->live && e->pidfd >= 0)
                        close(e->pidfd);
        }
        for (size_t c = 0; c < t->n_chunks; c++) {
                if (!t->chunks[c].released)
                        sodium_memzero(t->chunks[c].ents, CHUNK_BYTES);
                munmap(t->chunks[c].ents, CHUNK_BYTES);
        }
        free(t->chunks);
        cb_tombs_free(t->tombs);
        free(t->free_ents);
        free(t->slots);
        free(t->uids);
        cb_secbuf_free(t->key);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

static void hash_token(const cb_tokens *t, const char *tok, size_t len, unsigned char out[HASH_LEN]) {
        crypto_generichash(out, HASH_LEN, (const unsigned char *)tok, len, cb_secbuf_data(t->key),
                           crypto_generichash_KEYBYTES);
}

static struct entry *lookup(cb_tokens *t, const unsigned char h[HASH_LEN]) {
        uint64_t tag = tag_of(h);

        for (size_t i = (size_t)tag & (t->cap - 1), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
                const struct slot *sl = &t->slots[i];

                if (sl->state == SLOT_EMPTY)
                        return NULL;
                if (sl->state == SLOT_LIVE && sl->tag == tag) {
                        struct entry *e = ent_at(t, sl->ent);

                        if (sodium_memcmp(e->hash, h, HASH_LEN) == 0)
                                return e;
                }
        }
        return NULL;
}

/* Rebuild the index at new_cap, dropping tombstones. */
static int rehash(cb_tokens *t, size_t new_cap) {
        struct slot *ns = calloc(new_cap, sizeof(*ns));

        if (!ns)
                return cb_error_set(-ENOMEM, "out of memory");
        free(t->slots);
        t->slots = ns;
        t->cap = new_cap;
        t->slots_used = 0;
        for (size_t i = 0; i < t->ents_n; i++) {
                struct entry *e = ent_at(t, i);

                if (!e->live)
                        continue;
                size_t j = (size_t)tag_of(e->hash) & (t->cap - 1);
                while (ns[j].state != SLOT_EMPTY)
                        j = (j + 1) & (t->cap - 1);
                ns[j] = (struct slot){ .tag = tag_of(e->hash), .ent = (uint32_t)i, .state = SLOT_LIVE };
                e->slot = (uint32_t)j;
                t->slots_used++;
        }
        return 0;
}

/* A zeroed chunk, its pages populated in one call (MAP_POPULATE): faulting
 * them in one by one as the table fills cost 2 % of the daemon's time in
 * tests/bench/tokens.sh -- page faults are dear on a paravirtualised VM. */
static struct entry *chunk_new(void) {
        void *p = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

        return p == MAP_FAILED ? NULL : p;
}

/* A free entry and its number (a chunk added as needed); NULL on ENOMEM. */
static struct entry *entry_alloc(cb_tokens *t, uint32_t *ret_index) {
        struct chunk *c;

        if (t->n_free) {
                *ret_index = t->free_ents[--t->n_free];
        } else {
                if (t->ents_n == t->ents_cap) {
                        size_t nc = t->ents_cap + CHUNK_N;
                        struct entry *chunk = nc <= UINT32_MAX ? chunk_new() : NULL;
                        struct chunk *chunks = chunk ? realloc(t->chunks, (t->n_chunks + 1) * sizeof(*chunks)) : NULL;
                        uint32_t *nf = chunks ? calloc(nc, sizeof(*nf)) : NULL;

                        if (chunks)
                                t->chunks = chunks;
                        if (!nf) {
                                if (chunk)
                                        munmap(chunk, CHUNK_BYTES);
                                return NULL;
                        }
                        t->chunks[t->n_chunks++] = (struct chunk){ .ents = chunk };
                        free(t->free_ents); /* empty: n_free == 0 here */
                        t->free_ents = nf;
                        t->ents_cap = nc;
                }
                *ret_index = (uint32_t)t->ents_n++;
        }
        c = &t->chunks[*ret_index >> CHUNK_SHIFT];
        if (c->released) {
                /* Its pages were given back: one call faults them in again
                 * (as MAP_POPULATE did), not one fault per page. */
#ifdef MADV_POPULATE_WRITE
                (void)madvise(c->ents, CHUNK_BYTES, MADV_POPULATE_WRITE);
#endif
                c->released = false;
        }
        c->used++;
        return ent_at(t, *ret_index);
}

static int issue_locked(cb_tokens *t, const cb_peer *peer, const char *client, const char *secret, uint32_t version,
                        unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                        const char ret_token[CB_TOKEN_LEN + 1], const unsigned char h[HASH_LEN],
                        const unsigned char acc[12], int *pidfd, const cb_token_info **ret_info);

int cb_tokens_issue(cb_tokens *t, const cb_peer *peer, const char *client, const char *secret, uint32_t version,
                    unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                    char ret_token[CB_TOKEN_LEN + 1], const cb_token_info **ret_info) {
        return cb_tokens_issue_fenced(t, CB_TOKENS_NO_FENCE, peer, client, secret, version, uses, ttl, max_uses, bind,
                                      ret_token, ret_info);
}

uint64_t cb_tokens_fence(cb_tokens *t) {
        pthread_mutex_lock(&t->lock);
        uint64_t f = t->revocations;
        pthread_mutex_unlock(&t->lock);
        return f;
}

int cb_tokens_issue_fenced(cb_tokens *t, uint64_t fence, const cb_peer *peer, const char *client, const char *secret,
                           uint32_t version, unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                           char ret_token[CB_TOKEN_LEN + 1], const cb_token_info **ret_info) {
        unsigned char h[HASH_LEN], acc[12];
        char tok[CB_TOKEN_LEN + 1];
        const cb_token_info *info = NULL;
        bool bind_process = bind == CB_BIND_PROCESS || bind == CB_BIND_SESSION; /* both hold a pidfd */
        int pidfd = -1, r;

        if (strlen(secret) >= sizeof(ret_copy.secret) || strlen(client) >= sizeof(ret_copy.client))
                return cb_error_set(-EINVAL, "secret or client name too long");
        if (bind_process && !peer->pidfd_pinned)
                return cb_error_set(-EOPNOTSUPP, "process-bound tokens need SO_PEERPIDFD (Linux 6.5 or later)");
        /* Outside the table's lock: the token, its hash, the issuer's pidfd. */
        if (bind_process && (peer->pidfd < 0 || (pidfd = fcntl(peer->pidfd, F_DUPFD_CLOEXEC, 3)) < 0))
                return cb_error_set(-ESRCH, "cannot pin the calling process for a process-bound token");
        cb_token_generate_extra(tok, acc, sizeof(acc));
        hash_token(t, tok, CB_TOKEN_LEN, h);
        pthread_mutex_lock(&t->lock);
        checked.t = NULL;
        if (fence != CB_TOKENS_NO_FENCE && fence != t->revocations)
                r = cb_error_set(-ESTALE, "tokens were revoked while this one was being issued: check again");
        else
                r = issue_locked(t, peer, client, secret, version, uses, ttl, max_uses, bind, tok, h, acc, &pidfd,
                                 &info);
        if (r == 0 && ret_info)
                *ret_info = copy_out(info);
        pthread_mutex_unlock(&t->lock);
        if (pidfd >= 0)
                close(pidfd); /* not taken by the table */
        if (r == 0)
                memcpy(ret_token, tok, sizeof(tok)); /* untouched on failure */
        cb_wipe(tok, sizeof(tok));
        sodium_memzero(h, sizeof(h));
        return r;
}

static int issue_locked(cb_tokens *t, const cb_peer *peer, const char *client, const char *secret, uint32_t version,
                        unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                        const char ret_token[CB_TOKEN_LEN + 1], const unsigned char h[HASH_LEN],
                        const unsigned char acc[12], int *pidfd, const cb_token_info **ret_info) {
        uint32_t ei;
        struct entry *e;
        struct uid_count *per_uid;
        bool bind_process = bind == CB_BIND_PROCESS || bind == CB_BIND_SESSION; /* both hold a pidfd */
        int r;

        (void)ret_token;
        /* Expired and orphaned entries go at most once a second: a sweep
         * is O(table) with a syscall per process-bound token. */
        if (now_s() != t->last_sweep)
                sweep_locked(t, now_s());
        if (t->live >= t->max_total)
                return cb_error_set(-ENOSPC, "total token cap: the broker holds the maximum of %zu live tokens "
                                    "(credbrokerd --max-tokens)", t->max_total);
        /* The per-uid cap bounds what one (possibly hijacked) tool can pin. */
        per_uid = uid_counter(t, peer->uid, true);
        if (!per_uid)
                return cb_error_set(-ENOMEM, "out of memory");
        if (per_uid->n >= t->max_per_uid)
                return cb_error_set(-ENOSPC, "per-uid token cap: uid %u holds the maximum of %zu live tokens "
                                    "(credbrokerd --max-tokens-per-uid)", (unsigned)peer->uid, t->max_per_uid);
        if (bind_process && per_uid->bound >= t->max_bound_per_uid)
                return cb_error_set(-ENOSPC, "per-uid process-bound cap: uid %u holds the maximum of %zu process-bound tokens",
                                    (unsigned)peer->uid, t->max_bound_per_uid);
        if (bind_process && t->bound >= t->max_bound)
                return cb_error_set(-ENOSPC, "process-bound cap: the broker holds the maximum of %zu process-bound "
                                    "tokens (one file descriptor each)", t->max_bound);
        if ((t->slots_used + 1) * 2 > t->cap && (r = rehash(t, t->live * 4 > t->cap ? t->cap * 2 : t->cap)) < 0)
                return r;
        e = entry_alloc(t, &ei);
        if (!e)
                return cb_error_set(-ENOMEM, "out of memory");
        size_t i = (size_t)tag_of(h) & (t->cap - 1);
        while (t->slots[i].state == SLOT_LIVE)
                i = (i + 1) & (t->cap - 1);
        if (t->slots[i].state == SLOT_EMPTY)
                t->slots_used++;
        t->slots[i] = (struct slot){ .tag = tag_of(h), .ent = ei, .state = SLOT_LIVE };
        memset(e, 0, sizeof(*e));
        e->slot = (uint32_t)i;
        e->live = true;
        e->pidfd = -1;
        memcpy(e->hash, h, HASH_LEN);
        memcpy(e->info.accessor, "cba_", 4);
        sodium_bin2hex(e->info.accessor + 4, sizeof(e->info.accessor) - 4, acc, 12);
        snprintf(e->info.secret, sizeof(e->info.secret), "%s", secret); /* lengths checked above */
        snprintf(e->info.client, sizeof(e->info.client), "%s", client);
        e->info.version = version;
        e->info.uses = uses;
        e->info.issued = now_s();
        e->info.expires = e->info.issued + ttl;
        e->info.max_uses = max_uses;
        e->info.uid = peer->uid;
        memcpy(e->info.exe_sha256, peer->exe_sha256, 32);
        e->info.any_exe = bind == CB_BIND_UID || bind == CB_BIND_SESSION;
        e->info.any_process = bind == CB_BIND_SESSION;
        if (bind_process) {
                e->info.bound_process = true;
                e->info.pid = peer->pid;
                e->pidfd = *pidfd; /* duplicated by the caller, outside the lock */
                *pidfd = -1;
        }
        t->live++;
        per_uid->n++;
        if (bind_process) {
                t->bound++;
                per_uid->bound++;
        }
        if (ret_info)
                *ret_info = &e->info;
        return 0;
}

/* Exited (zombie or reaped): its pidfd polls readable (or was released by
 * the sweep). */
static bool process_gone(const struct entry *e) {
        struct pollfd pfd = { .fd = e->pidfd, .events = POLLIN };
        int r;

        if (e->pidfd < 0)
                return true;
        do
                r = poll(&pfd, 1, 0);
        while (r < 0 && errno == EINTR);
        return r != 0;
}

/* The accessor of the token the last find() on this thread found (kept
 * for a refusal's audit record, where it is hashed; never in messages). */
static _Thread_local char refused_accessor[CB_ACCESSOR_LEN + 1];

const char *cb_tokens_refused_accessor(void) {
        return refused_accessor;
}

/* The answer for a token not in the table: why, if its tombstone is still
 * there (its accessor noted for the audit record, as for a live one). */
static int gone(cb_tokens *t, const unsigned char h[HASH_LEN]) {
        unsigned char acc[CB_TOMBS_ACC_LEN];
        cb_tomb_reason why = cb_tombs_get(t->tombs, h, now_s(), acc);

        if (why != CB_TOMB_NONE) {
                memcpy(refused_accessor, "cba_", 4);
                sodium_bin2hex(refused_accessor + 4, sizeof(refused_accessor) - 4, acc, sizeof(acc));
        }
        switch (why) {
        case CB_TOMB_EXPIRED:
                return cb_error_set(-ETIME, "token expired");
        case CB_TOMB_REVOKED:
                return cb_error_set(-ENOENT, "unknown or revoked token (this one was revoked)");
        case CB_TOMB_EXITED:
                return cb_error_set(-ESRCH, "token was bound to a process that has exited");
        case CB_TOMB_USED_UP:
                return cb_error_set(-EDQUOT, "token used up (every use its max_uses allowed was spent)");
        case CB_TOMB_NONE:
                break;
        }
        return cb_error_set(-ENOENT, "unknown or revoked token");
}

static int find(cb_tokens *t, const char *tok, size_t len, struct entry **ret) {
        unsigned char h[HASH_LEN];
        int r = cb_token_check(tok, len);
        struct entry *e;

        refused_accessor[0] = 0;

        if (r < 0)
                return cb_error_set(-EINVAL, "not a credbroker token");
        hash_token(t, tok, len, h);
        e = lookup(t, h);
        if (!e)
                return gone(t, h);
        memcpy(refused_accessor, e->info.accessor, sizeof(refused_accessor));
        if (e->info.expires <= now_s()) {
                retire(t, e, CB_TOMB_EXPIRED, now_s());
                return cb_error_set(-ETIME, "token expired");
        }
        *ret = e;
        return 0;
}

int cb_tokens_peek(cb_tokens *t, const char *token, size_t len, const cb_token_info **ret_info) {
        struct entry *e;
        int r;

        pthread_mutex_lock(&t->lock);
        checked.t = NULL;
        r = find(t, token, len, &e);
        if (r == 0)
                *ret_info = copy_out(&e->info);
        pthread_mutex_unlock(&t->lock);
        return r;
}

/* A token whose last use was just counted leaves the table at once (it
 * counted toward the live caps until it expired); its tombstone says "used
 * up".  The caller reads its copy (ret_copy). */
static bool used_up(const struct entry *e) {
        return e->info.max_uses && e->info.used >= e->info.max_uses;
}

static int check_use(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                     const cb_token_info **ret_info, bool count) {
        struct entry *e;
        int r = find(t, token, len, &e);

        if (r < 0)
                return r;
        if (e->info.uid != peer->uid)
                return cb_error_set(-EPERM, "token belongs to uid %u, presented by uid %u", (unsigned)e->info.uid,
                                    (unsigned)peer->uid);
        if (!e->info.any_exe && sodium_memcmp(e->info.exe_sha256, peer->exe_sha256, 32) != 0)
                return cb_error_set(-EPERM, "token was issued to another executable");
        if (e->info.bound_process) {
                if (process_gone(e)) {
                        retire(t, e, CB_TOMB_EXITED, now_s());
                        return cb_error_set(-ESRCH, "token was bound to a process that has exited");
                }
                /* The issuer is alive (just checked): its pid is its own. */
                if (e->info.pid != peer->pid && !e->info.any_process)
                        return cb_error_set(-ESRCH, "token is bound to another process");
        }
        if (!(e->info.uses & use))
                return use == CB_USE_REDEEM
                               ? cb_error_set(-EPERM, "this token is for proxy use only and cannot redeem a value: ask "
                                              "for one with \"use\": \"redeem\" (a token request without \"use\" "
                                              "gets a proxy token)")
                               : cb_error_set(-EPERM, "token does not carry this use");
        if (e->info.max_uses && e->info.used >= e->info.max_uses)
                return cb_error_set(-EDQUOT, "token used up (%u uses)", e->info.max_uses);
        if (count)
                e->info.used++;
        *ret_info = copy_out(&e->info);
        if (count && used_up(e)) {
                retire(t, e, CB_TOMB_USED_UP, now_s());
        } else if (!count) {
                checked.t = t;
                checked.ent = ent_index(t, e);
                memcpy(checked.hash, e->hash, HASH_LEN);
        }
        return 0;
}

int cb_tokens_use(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                  const cb_token_info **ret_info) {
        int r;

        pthread_mutex_lock(&t->lock);
        checked.t = NULL;
        r = check_use(t, token, len, peer, use, ret_info, true);
        pthread_mutex_unlock(&t->lock);
        return r;
}

int cb_tokens_check(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                    const cb_token_info **ret_info) {
        int r;

        pthread_mutex_lock(&t->lock);
        checked.t = NULL;
        r = check_use(t, token, len, peer, use, ret_info, false);
        pthread_mutex_unlock(&t->lock);
        return r;
}

/* info must be what this thread's last cb_tokens_check returned; its entry
 * is found again by number and must still hold the same token (hash): one
 * revoked, retired or reused in between is refused. */
int cb_tokens_count_checked(cb_tokens *t, const cb_token_info *info) {
        struct entry *e = NULL;
        int r = 0;

        pthread_mutex_lock(&t->lock);
        if (info == &ret_copy && checked.t == t && checked.ent < t->ents_n &&
            !t->chunks[checked.ent >> CHUNK_SHIFT].released) {
                e = ent_at(t, checked.ent);
                if (!e->live || sodium_memcmp(e->hash, checked.hash, HASH_LEN) != 0)
                        e = NULL;
        }
        checked.t = NULL;
        if (!e)
                r = cb_error_set(-ENOENT, "unknown or revoked token");
        else if (e->info.max_uses && e->info.used >= e->info.max_uses)
                r = cb_error_set(-EDQUOT, "token used up (%u uses)", e->info.max_uses);
        if (r == 0) {
                ret_copy.used = ++e->info.used; /* the caller's copy counts it too */
                if (used_up(e))
                        retire(t, e, CB_TOMB_USED_UP, now_s());
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}

static size_t revoke_where(cb_tokens *t, const char *field_off_match, size_t off) {
        size_t n = 0;

        pthread_mutex_lock(&t->lock);
        t->revocations++; /* even when none is live: an issue in flight must look again */
        for (size_t i = 0; i < t->ents_n; i++) {
                struct entry *e = ent_at(t, i);

                if (e->live && strcmp((const char *)&e->info + off, field_off_match) == 0) {
                        retire(t, e, CB_TOMB_REVOKED, now_s());
                        n++;
                }
        }
        pthread_mutex_unlock(&t->lock);
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

/* Give memory back after a burst: unmap empty chunks at the end, release
 * the pages of empty ones in the middle, rebuild the free stack so that the
 * lowest numbers go first (the high chunks empty), shrink an index four
 * times larger than the live tokens need.  O(entries). */
static void compact(cb_tokens *t) {
        bool shrunk = false;

        while (t->n_chunks > 1 && t->chunks[t->n_chunks - 1].used == 0) {
                struct chunk *c = &t->chunks[--t->n_chunks];

                munmap(c->ents, CHUNK_BYTES); /* every entry in it was wiped when dropped */
                t->ents_cap -= CHUNK_N;
                if (t->ents_n > t->ents_cap)
                        t->ents_n = t->ents_cap;
                shrunk = true;
        }
        if (shrunk) {
                uint32_t *nf = realloc(t->free_ents, t->ents_cap * sizeof(*nf));

                if (nf)
                        t->free_ents = nf; /* else the larger one stays: still big enough */
        }
        for (size_t c = 0; c < t->n_chunks; c++)
                if (t->chunks[c].used == 0 && !t->chunks[c].released &&
                    madvise(t->chunks[c].ents, CHUNK_BYTES, MADV_DONTNEED) == 0)
                        t->chunks[c].released = true;
        t->n_free = 0;
        for (size_t i = t->ents_n; i-- > 0;)
                if (!ent_at(t, i)->live) /* free (a released chunk's read as zeros) */
                        t->free_ents[t->n_free++] = (uint32_t)i;
        if (t->cap > 1024 && t->live * 16 < t->cap) {
                size_t nc = 1024;

                while (nc < t->live * 4)
                        nc *= 2;
                (void)rehash(t, nc); /* on ENOMEM the old index stays */
        }
        t->dropped = 0;
}

size_t cb_tokens_sweep(cb_tokens *t, uint64_t now) {
        size_t n;

        pthread_mutex_lock(&t->lock);
        n = sweep_locked(t, now);
        pthread_mutex_unlock(&t->lock);
        return n;
}

static size_t sweep_locked(cb_tokens *t, uint64_t now) {
        size_t n = 0;

        t->last_sweep = now;
        for (size_t i = 0; i < t->ents_n; i++) {
                struct entry *e = ent_at(t, i);

                if (!e->live)
                        continue;
                /* Dropped at once, the cap room and (process-bound) the
                 * pidfd given back; the tombstone says why for a minute. */
                if (e->info.expires <= now)
                        retire(t, e, CB_TOMB_EXPIRED, now);
                else if (e->info.bound_process && process_gone(e))
                        retire(t, e, CB_TOMB_EXITED, now);
                else
                        continue;
                n++;
        }
        if (t->dropped)
                compact(t);
        cb_tombs_sweep(t->tombs, now);
        return n;
}

size_t cb_tokens_bytes(const cb_tokens *t) {
        cb_tokens *w = (cb_tokens *)t; /* the lock, nothing else, is written */

        pthread_mutex_lock(&w->lock);
        size_t n = t->cap * sizeof(struct slot) + t->ents_cap * sizeof(uint32_t) + t->uids_cap * sizeof(struct uid_count);

        for (size_t c = 0; c < t->n_chunks; c++)
                n += t->chunks[c].released ? 0 : CHUNK_BYTES;
        n += cb_tombs_bytes_held(t->tombs);
        pthread_mutex_unlock(&w->lock);
        return n;
}

size_t cb_tokens_count(const cb_tokens *t) {
        cb_tokens *w = (cb_tokens *)t;

        pthread_mutex_lock(&w->lock);
        size_t n = t->live;
        pthread_mutex_unlock(&w->lock);
        return n;
}
