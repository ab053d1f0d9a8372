/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between the audit log's two halves: audit.c (records, the MAC chain,
 * the failed state, open/reopen/verify) and audit_queue.c (the bounded
 * in-memory queue, the writer thread that does every write(2) and
 * fdatasync(2) on the log, and the waits for "my record is written").
 *
 * Lock order: the daemon's request lock (when the caller holds it), then
 * audit.c's rec_lock, then the queue's lock, then the failed state's lock;
 * the writer thread holds none of them while it does I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* audit.c, run by the writer thread only */
int audit_writer_do(audit_rec *e);
