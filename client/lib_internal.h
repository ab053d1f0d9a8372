/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcredbroker's insides shared by lib.c (the transport: one request,
 * errors, handles) and lib_tool.c (the tool API).  Not installed; nothing
 * here is exported (-fvisibility=hidden; the API is CB_EXPORT in those
 * files).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "credbroker.h"

#define CB_RESPONSE_MAX (256 * 1024)
#define CB_TIMEOUT_S 30L
#define CB_TIMEOUT_MAX_S 86400L
#define CB_PATH_MAX 2048
#define CB_TOKEN_MAX 256
#define CB_SECRET_NAME_MAX 128
#define CB_APPROVAL_ID_MAX 64
#define CB_APPROVAL_WAIT_MAX 86400 /* seconds: the broker's longest approval timeout */
#define CB_APPROVAL_POLL_MAX 10    /* seconds between polls, at most */

struct cb_client {
        char *socket_path;
        uid_t broker_uid;        /* besides root and our own uid, who may serve the socket; -1: nobody */
        bool wrong_server;       /* set by check_server(): the request was not sent */
        char error[512];
        cb_client_pending_fn on_pending;
        void *pending_ud;
        long timeout_s;          /* a request's answer within this (0: CB_TIMEOUT_S) */
};

struct cb_secret {
        unsigned char *value; /* sodium_malloc, len bytes + a NUL */
        size_t len;
        char *name;
        uint32_t version;
};

/* A response body, in secure memory (lib.c). */
struct body {
        unsigned char *p; /* sodium_malloc; NUL-terminated */
        size_t n, cap;
        bool too_big, oom;
};

/* Set c's message and return r (a negative errno). */
int cb_lib_set_error(cb_client *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Wipe and free a response body; leaves it empty. */
void cb_lib_body_free(struct body *b);
/* Perform method path with body (may be NULL for none).  On a 2xx answer
 * return 0 with the body in *resp (caller: cb_lib_body_free) and the
 * status in *ret_status; otherwise the mapped error with the broker's
 * message. */
int cb_lib_http(cb_client *c, const char *method, const char *path, const void *req, size_t req_len,
                struct body *resp, long *ret_status);
/* Parse a 2xx body as a JSON object (new reference), or NULL with c's
 * message set; the parser's error text may quote the input, so it is
 * never shown. */
json_t *cb_lib_parse_object(cb_client *c, const struct body *b);
