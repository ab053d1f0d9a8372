/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by store.c (open, index, reads) and store_write.c
 * (the commit path).  Not part of any API. */
#pragma once

#include <pthread.h>

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <sodium.h>

#include "store.h"
#include "store_format.h"

#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define K_KEK 0
#define K_DEKWRAP 32
#define K_HDRMAC 64
#define K_LOGMAC 96
#define KEYS_LEN 128


struct vloc {
        size_t body_off; /* PUT record body in s->log; 0 for a tombstone */
        size_t body_len;
};

struct secret {
        char *name;
        cb_version_info *v; /* ascending versions; v[i].meta owned */
        struct vloc *loc;
        size_t n, cap;
};

/* The header's pre-allocated stand-in (fsutil.h cb_atomic_replace_spare)
 * and the log space kept allocated past its end: what a commit needs on a
 * full file system. */
#define CB_HEADER_SPARE "header.spare"
#define CB_LOG_RESERVE (64 * 1024)

struct cb_store {
        /* The in-memory state readers see (index, log bytes, header):
         * changed only under the write side, and only for memory work --
         * a commit's appends, fsyncs and header replacement happen before
         * it takes the write side, so a reader holding the read side
         * (cb_store_read_lock) never waits for a writer's I/O.  Writers
         * are serialised by wr. */
        pthread_rwlock_t mem;
        /* The writers' mutex (recursive): every write function holds it
         * for its whole commit (log append, fsyncs, header replacement);
         * a caller may hold it around several calls to make a
         * read-check-write sequence atomic (cb_store_write_lock).  Never
         * taken by a reader: readers take mem's read side only.  Taken
         * with trylock by cb_store_check_fresh (never waited for there). */
        pthread_mutex_t wr;
        int dirfd, logfd;
        size_t log_reserved;   /* the log's allocated end we asked for (0: not yet) */
        char *dir;
        cb_secbuf *keys; /* KEK | DEK-wrap key | header MAC key | log MAC key */
        unsigned char *hdr_bytes;
        size_t hdr_len;
        cb_header hdr; /* pointers into hdr_bytes */
        cb_buf log;    /* committed log bytes */
        char logname[8 + 2 * CB_LOG_ID_LEN];
        struct secret *sec;
        size_t nsec, capsec;
        uint32_t *ht; /* open addressing: secret index + 1, 0 = empty */
        size_t htcap;
        unsigned char htkey[crypto_shorthash_KEYBYTES];
        bool broken;
        char readonly_why[256]; /* set when open could not commit a recovery */
        /* Anti-rollback through the unlock provider's counter (tpm2);
         * NULL when the provider has none. */
        const cb_unlock_provider *rollback_prov;
        cb_unlock_spec *rollback_spec;
        /* A commit is durable but the counter could not follow it (TPM
         * unreachable): the next write first catches the counter up, and
         * is refused (that write only) while it cannot. */
        bool counter_behind;
        /* Opened with spec->accept_rollback on a copy older than the
         * counter: nothing has been written (not even a roll-forward of
         * the tail, which ends at pending_end / pending_head); every write
         * is refused until cb_store_accept_rollback. */
        bool rollback_pending;
        size_t pending_end;
        unsigned char pending_head[CB_MAC_LEN];
        /* Leak marks in log order (store_leak.c), re-emitted by compaction. */
        struct leakmark *leaks;
        size_t nleaks, capleaks;
        /* What the header on disk looked like when we last read or wrote it
         * (cb_store_check_fresh); stale once it changed under us. */
        dev_t hdr_dev;
        ino_t hdr_ino;
        off_t hdr_size;
        struct timespec hdr_mtim, hdr_ctim;
        bool stale;
};

struct leakmark {
        char *name;
        uint32_t version;
        uint64_t time;
        unsigned char hash[CB_MAC_LEN];
};


void cb_store_hook(const char *point);
const unsigned char *cb_store_key(const cb_store *s, size_t which);
uint64_t cb_store_now(void);
void cb_store_log_name(char out[8 + 2 * CB_LOG_ID_LEN], const unsigned char id[CB_LOG_ID_LEN]);
struct secret *cb_store_find(const cb_store *s, const char *name, size_t len);
cb_version_info *cb_store_find_version(struct secret *sec, uint32_t version, size_t *ret_idx);
cb_version_info *cb_store_current_of(struct secret *sec);
/* Every version destroyed (cb_store_delete): listed nowhere, no current. */
bool cb_store_sec_deleted(const struct secret *sec);
int cb_store_apply_record(cb_store *s, const cb_record *rec, size_t body_off, size_t body_len);
int cb_store_load_log(cb_store *s, const unsigned char *p, size_t committed, size_t avail, const char *path,
                      size_t *ret_end, unsigned char ret_head[CB_MAC_LEN], uint64_t *ret_gen);
/* Atomically replace the header with new commit fields (store_write.c). */
int cb_store_write_header(cb_store *s, uint64_t gen, const unsigned char log_id[CB_LOG_ID_LEN], uint64_t log_len,
                          const unsigned char head[CB_MAC_LEN]);
void cb_store_free_index(cb_store *s);
/* Apply a CB_REC_LEAK record (store_leak.c). */
int cb_store_apply_leak(cb_store *s, const cb_record *rec);
/* Remember the header's identity as we read or wrote it (store_leak.c). */
void cb_store_note_header(cb_store *s);
/* Frame the leak marks into batch for a compaction at generation gen. */
int cb_store_emit_leaks(const cb_store *s, uint64_t gen, cb_buf *batch, unsigned char head[CB_MAC_LEN],
                        int (*frame)(const cb_store *, cb_buf *, unsigned char *, const cb_buf *));
/* The commit path's entry points, shared with store_leak.c (store_write.c). */
int cb_store_txn_begin(cb_store *s, int *ret_lock);
int cb_store_commit_one(cb_store *s, const cb_record *rec);
/* Compare the committed generation with the provider's counter and advance
 * the counter if behind (see kek.h sync_generation); 0 without one. */
int cb_store_sync_generation(cb_store *s, uint64_t *ret_counter_gen);
int cb_store_remove_stale_logs(cb_store *s);
/* AAD for a DEK and for a value (see store.h). */
int cb_store_dek_aad(cb_buf *aad, const cb_store *s, const char *name, uint32_t version);
int cb_store_val_aad(cb_buf *aad, const cb_store *s, const char *name, uint32_t version,
                     const unsigned char *meta, size_t meta_len);
