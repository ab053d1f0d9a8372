/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between the audit log's files: audit.c (open/reopen/close, the failed
 * state), audit_writer.c (the MAC chain, segments, resume),
 * audit_record.c (records), audit_verify.c, and audit_queue.c (the bounded
 * in-memory queue, the writer thread that does every write(2) and
 * fdatasync(2) on the log, and the waits for "my record is written").
 *
 * Lock order: any lock of the caller's (the admin lock, a subsystem's), then
 * audit_rec_lock, then the queue's lock, then the failed state's lock;
 * the writer thread holds none of them while it does I/O.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_format.h"
#include "store.h"

/* Kinds of queue entry. */
enum {
        AUDIT_REC_RECORD = 0, /* one record (canon: compact JSON without "seq") */
        AUDIT_REC_BEGIN,      /* start a segment: the header ("start" at open) */
        AUDIT_REC_REOPEN,     /* SIGHUP: switch to fd, new segment log_id */
        AUDIT_REC_STOP,       /* write audit.stop and end the thread */
};

typedef struct audit_rec {
        struct audit_rec *next;
        int kind;
        char *canon; /* AUDIT_REC_RECORD: "{...}" without "seq", malloc'd */
        size_t len;
        bool sync;    /* fdatasync'ed before it counts as written (an intent) */
        bool counted; /* a failure to write it refuses a request: counted */
        int state;    /* AUDIT_REC_QUEUED ... (under the queue's lock) */
        int result;   /* 0 written, -errno (state DONE) */
        int refs;     /* the queue's, and a waiter's */
        /* A request suspended until this record is written (audit_rec_watch). */
        void (*wake)(void *ud);
        void *wake_ud;
        uint64_t wake_deadline_ms;
        struct audit_rec *wprev, *wnext; /* on the watch list */
        int fd;       /* AUDIT_REC_REOPEN: the new file */
        unsigned char log_id[16];
} audit_rec;

enum { AUDIT_REC_QUEUED = 0, AUDIT_REC_TAKEN, AUDIT_REC_DONE, AUDIT_REC_WITHDRAWN };

/* audit_queue.c */
/* Start the writer thread (at open; signals blocked by the caller). */
int audit_queue_start(void);
/* Hand the thread a STOP entry and wait for it at most timeout_ms; false
 * when it did not end (stalled in a write): then nothing it uses may be
 * freed. */
bool audit_queue_stop(unsigned timeout_ms);
/* Append e; control entries (BEGIN, REOPEN, STOP) are never refused.
 * -EAGAIN when the queue is full (its bytes or entries cap).  With
 * waiter, the caller keeps a reference for audit_rec_wait(). */
int audit_queue_push(audit_rec *e, bool waiter);
/* Has the writer been inside one write or sync for more than ms? */
bool audit_queue_stalled(unsigned ms, uint64_t *ret_for_ms);
/* Point the group-commit sync at the log being written; note a write. */
void audit_sync_set_fds(int fd, int head_fd);
void audit_sync_note_written(void);
void audit_sync_shutdown(void);

/* audit_writer.c, run by the writer thread only */
int audit_writer_do(audit_rec *e);

/* ---- audit.c's state, shared by the log's files ----
 * audit.c (the log file: open, reopen, close; the failed state),
 * audit_writer.c (the writer thread's side: the chain, segments, resume),
 * audit_record.c (making records on any thread) and audit_verify.c. */

/* The writer thread's (after audit_open; before, the opener's). */
struct audit_writer_state {
        int fd, head_fd;
        char *path;            /* fixed from open to close */
        unsigned char *master; /* sodium_malloc: CB_AUDIT_KEY_LEN; fixed from open to close */
        cb_audit_keys *keys;   /* sodium_malloc: the current segment's (MAC) */
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t seq;          /* of the last record written in this segment */
        unsigned char mac[CB_AUDIT_MAC_LEN];
        bool need_begin;       /* the segment header is not written yet */
        const char *reason;    /* why the segment starts: "start", "reopen" */
        cb_audit_head prev;    /* where the previous segment ended */
        /* A resume (and header) written but not yet followed by a record:
         * if that record cannot be written either, the disk is still full
         * and the resume is taken back (see resume()). */
        bool tentative, resuming;
        struct {
                off_t size; /* the log's size before the resume */
                uint64_t seq, failed_since, refused_base;
                unsigned char mac[CB_AUDIT_MAC_LEN];
                bool need_begin, failed;
                char error[128];
                char head[CB_AUDIT_HEAD_TEXT_LEN];
                ssize_t head_len;
        } undo;
};
extern struct audit_writer_state audit_wr;

/* The records' side, under audit_rec_lock (audit's own, held for the
 * microseconds a record is hashed and queued, never over I/O): the keys
 * identifiers are hashed under (the segment the next record goes to), and
 * the order records enter the queue in.  Any thread may make a record. */
extern pthread_mutex_t audit_rec_lock;
extern cb_audit_keys *audit_id_keys; /* sodium_malloc */

/* The failed state, shared by the writer and the waiters (audit_fail.lock). */
/* The failed state, shared by the writer and the waiters (audit_fail.lock). */
struct audit_fail_state {
        pthread_mutex_t lock;
        bool failed;
        uint64_t failed_since;
        uint64_t refused_total, refused_base; /* refused since failed_since: total - base */
        char error[128];
        /* For the verify route: the head as written, and the file. */
        cb_audit_head head;
        dev_t dev;
        ino_t ino;
};
extern struct audit_fail_state audit_fail;

/* audit.c */
/* Enter the failed state (r, what: why), alert and log once a period. */
void audit_enter_failed(int r, const char *what);
/* A request refused because of the log: counted for audit.resume. */
void audit_count_refused(void);
bool audit_is_failed(void);
/* The head for readers other than the writer (under audit_fail.lock). */
void audit_publish_head(void);
/* The log file's device and inode, for the verify route. */
void audit_set_file_identity(void);
/* The master key, and the checkpoint opened for writing (the daemon) or
 * reading only (offline verify: a missing checkpoint is -ENOENT). */
int audit_load_keys(const char *state_dir, cb_store *store, bool writer, int *ret_head_fd);
/* Read and check the head checkpoint (none yet: *ret unset, 0). */
int audit_read_head(int fd, cb_audit_head *ret);
