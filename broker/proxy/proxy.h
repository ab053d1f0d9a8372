/* SPDX-License-Identifier: Apache-2.0 */
/* Between the proxy's deciding half (proxy_route.c: may this request go,
 * and where) and its carrying half (proxy.c: the upstream transfer). */
#pragma once

#include <stddef.h>

#include <curl/curl.h>

#include "daemon.h"
#include "egress.h"
#include "match.h"
#include "proxy_request.h"

/* What the proxy works on, handed by main.c at start (proxy_attach, before
 * the servers), so that no file of proxy/ reaches for the daemon-wide
 * state: the store (read under its read side) and the token table (it
 * guards itself).  The deciding half runs under no daemon-wide lock; the
 * jobs in flight are guarded by proxy_jobs_mu, each job by its own mu
 * (proxy_job.h), both held for memory work only.  The completion's audit
 * record needs no lock (audit.h).  The policy is the request's own
 * snapshot (rq->policy). */
typedef struct proxy_env {
        cb_store *store;
        cb_tokens *tokens;
} proxy_env;
void proxy_attach(const proxy_env *env);
extern proxy_env proxy_cur; /* what proxy_attach was handed (proxy.c) */

#define PROXY_HELD_MAX (1024 * 1024) /* a sandbox's proxied body, held whole and scanned */

/* A decided request. */
typedef struct proxy_spec {
        char method[32];
        char *url;                    /* owned; may hold the value (query injection) */
        struct curl_slist *headers;   /* owned; holds the injected credential */
        cb_dest dest;
        const char *ca_file, *pin;    /* sealed metadata, or NULL */
        /* What the response is checked for (owned, taken by proxy_start):
         * the value's forms (keys/match.h), basic "user:value" included. */
        cb_matcher *red;
        /* A sandbox's request with a body: the live matcher (every live
         * value, tokens) for the outbound leak guard, which holds the body
         * (at most PROXY_HELD_MAX) and scans it before a byte goes up;
         * NULL otherwise.  Taken by proxy_start. */
        cb_matcher *leak;
        cb_preq_frame frame;          /* how MHD framed the body (the broker's decision) */
        bool expect_body;             /* frame != CB_FRAME_NONE: a body follows */
        long long content_length;     /* CB_FRAME_LENGTH: the length; else -1 (sent chunked) */
        cb_preq_body scan_body;       /* methods sealed: scan the body for overrides as this kind */
        char boundary[CB_PREQ_BOUNDARY_MAX + 1];
        size_t value_len;
        char path[1024];              /* for the audit record, without the query */
        char request_id[32];          /* shared by the decision's and the completion's audit records */
        /* The token table's revocation fence taken before the token was
         * checked, and the token (borrowed): proxy_start checks, once the
         * job is where a cut finds it, that no revocation of the token ran
         * meanwhile (see there). */
        uint64_t fence;
        const char *token;
} proxy_spec;

/* Start the upstream transfer for rq and park the connection until the
 * upstream answers (a request with a body: once the body is in); takes
 * sp->url and sp->headers (wiped and freed on every path).  Returns an MHD
 * result.  Any serving thread, no lock held. */
int proxy_start(request *rq, proxy_spec *sp);

/* Wipe every string of a header list, then free it. */
void proxy_slist_wipe_free(struct curl_slist *l);
