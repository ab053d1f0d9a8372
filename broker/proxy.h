/* SPDX-License-Identifier: Apache-2.0 */
/* Between the proxy's deciding half (proxy_route.c: may this request go,
 * and where) and its carrying half (proxy.c: the upstream transfer). */
#pragma once

#include <stddef.h>

#include <curl/curl.h>

#include "daemon.h"
#include "egress.h"
#include "proxy_request.h"

/* A decided request. */
typedef struct proxy_spec {
        char method[32];
        char *url;                    /* owned; may hold the value (query injection) */
        struct curl_slist *headers;   /* owned; holds the injected credential */
        cb_dest dest;
        const char *ca_file, *pin;    /* sealed metadata, or NULL */
        /* What the response is checked for (copied): the value itself and
         * the forms it was sent in or may be echoed as — base64 of
         * "user:value" for basic auth, percent-escaped, JSON-escaped. */
        const unsigned char *forms[4];
        size_t form_lens[4], nforms;
        cb_preq_frame frame;          /* how MHD framed the body (the broker's decision) */
        bool expect_body;             /* frame != CB_FRAME_NONE: a body follows */
        long long content_length;     /* CB_FRAME_LENGTH: the length; else -1 (sent chunked) */
        cb_preq_body scan_body;       /* methods sealed: scan the body for overrides as this kind */
        char boundary[CB_PREQ_BOUNDARY_MAX + 1];
        size_t value_len;
        char path[1024];              /* for the audit record, without the query */
} proxy_spec;

/* Start the upstream transfer for rq and park the connection until the
 * upstream answers (a request with a body: once the body is in); takes
 * sp->url and sp->headers (wiped and freed on every path).  Returns an MHD
 * result.  Call under cbd.lock. */
int proxy_start(request *rq, proxy_spec *sp);

/* Wipe every string of a header list, then free it. */
void proxy_slist_wipe_free(struct curl_slist *l);
