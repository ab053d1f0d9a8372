/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcredbroker: HTTP/1.1 + JSON over the broker's Unix socket (libcurl,
 * jansson).  Every call uses a fresh easy handle and forbids connection
 * reuse, so the broker identifies the caller (SO_PEERCRED, pidfd, exe hash)
 * on a connection this very process opened for this very request.
 *
 * Memory hygiene for values and tokens:
 *   - response bodies are collected in sodium_malloc memory (wiped on free),
 *     capped at CB_RESPONSE_MAX (the transfer is aborted beyond it);
 *   - values are copied out of the parsed JSON into a cb_secret
 *     (sodium_malloc) and the JSON tree is released at once;
 *   - the first handle created installs wipe-on-free allocators in jansson
 *     (json_set_alloc_funcs) and libcurl (curl_global_init_mem), so the
 *     copies they make (jansson's lexer buffer and string nodes, curl's
 *     receive buffer and request buffer) are zeroed before free.  Each is
 *     installed only if the process has not chosen its own: jansson's only
 *     while it still uses plain malloc/free, curl's only if nobody called
 *     curl_global_init before us (then curl keeps that allocator and its
 *     buffers are freed unwiped: the residual exposure of an embedding
 *     program that initialises curl itself).  Kernel socket buffers are out
 *     of our reach.
 *
 * This file: the transport (one request, errors, handles, generic
 * requests); lib_tool.c: the tool API (token, approval wait, redeem).
 */
#include <errno.h>
#include <pwd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "credbroker.h"
#include "curl_lazy.h"
#include "lib_internal.h"
#include "wipe_heap.h"

/* ---- allocators that wipe on free (jansson, curl) ---- */

static void *wipe_malloc(size_t n) {
        return malloc(n);
}

static void *wipe_calloc(size_t nmemb, size_t size) {
        return calloc(nmemb, size);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_r;

static void global_init(void) {
        json_malloc_t jm;
        json_free_t jf;

        if (sodium_init() < 0) {
                global_r = -ENOMEM;
                return;
        }
        json_get_alloc_funcs(&jm, &jf);
        if (jm == malloc && jf == free)
                json_set_alloc_funcs(wipe_malloc, cb_wipe_free);
        /* libcurl is loaded now (curl_lazy.c), not at start-up. */
        if (!cb_curl_loaded()) {
                global_r = -ELIBACC;
                return;
        }
        /* A no-op (but for a reference count) if curl is initialised already. */
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, wipe_malloc, cb_wipe_free, cb_wipe_realloc, cb_wipe_strdup,
                                 wipe_calloc) != CURLE_OK)
                global_r = -ENOMEM;
}

/* ---- errors ---- */

int cb_lib_set_error(cb_client *c, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        /* One line, no terminal control: broker messages quote things like
         * the caller's executable path. */
        for (char *p = c->error; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return r;
}

/* CURLOPT_PREREQFUNCTION: after connect(), before a byte of the request
 * (a value, a token, an admin request) goes out.  A socket path an
 * attacker could stand in for (a run dir it managed to replace) must not
 * get them: the server's SO_PEERCRED uid must be root, our own uid (a
 * process of ours controls us anyway) or the broker uid configured with
 * cb_client_set_broker_uid (credbroker --broker-uid, $CREDBROKER_BROKER_UID),
 * by default the uid of the packaged service's user "credbroker" if the
 * system has one (broker_user_load). */
struct prereq {
        cb_client *c;
        curl_socket_t fd;  /* from CURLOPT_SOCKOPTFUNCTION (CURLINFO_ACTIVESOCKET is not set yet) */
};

static int note_socket(void *ud, curl_socket_t fd, curlsocktype purpose) {
        (void)purpose;
        ((struct prereq *)ud)->fd = fd;
        return CURL_SOCKOPT_OK;
}

static int check_server(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                        int conn_local_port) {
        struct prereq *p = ud;
        curl_socket_t fd = p->fd;
        struct ucred uc;
        socklen_t len = sizeof(uc);

        (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
        if (fd == CURL_SOCKET_BAD || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || len != sizeof(uc)) {
                p->c->wrong_server = true;
                cb_lib_set_error(p->c, CB_ERR_DENIED, "cannot tell who serves %s (SO_PEERCRED): nothing sent",
                          p->c->socket_path);
                return CURL_PREREQFUNC_ABORT;
        }
        if (uc.uid != 0 && uc.uid != getuid() && (p->c->broker_uid == (uid_t)-1 || uc.uid != p->c->broker_uid)) {
                p->c->wrong_server = true;
                cb_lib_set_error(p->c, CB_ERR_DENIED, "%s is served by uid %u (pid %d), not root%s: not the broker; "
                          "nothing sent (if the broker runs as that uid, pass --broker-uid %u or set "
                          "CREDBROKER_BROKER_UID)", p->c->socket_path, (unsigned)uc.uid, (int)uc.pid,
                          p->c->broker_uid != (uid_t)-1 ? " or the configured broker uid" : " or our own uid",
                          (unsigned)uc.uid);
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

static uid_t broker_user_uid = (uid_t)-1;
static pthread_once_t broker_user_once = PTHREAD_ONCE_INIT;

static void broker_user_load(void) {
        struct passwd pw, *res = NULL;
        char buf[1024];

        if (getpwnam_r("credbroker", &pw, buf, sizeof(buf), &res) == 0 && res)
                broker_user_uid = res->pw_uid;
}

CB_EXPORT void cb_client_set_broker_uid(cb_client *c, uid_t uid) {
        if (c)
                c->broker_uid = uid;
}

CB_EXPORT void cb_client_set_timeout(cb_client *c, unsigned seconds) {
        if (c)
                c->timeout_s = seconds > CB_TIMEOUT_MAX_S ? CB_TIMEOUT_MAX_S : (long)seconds;
}

static long timeout_of(const cb_client *c) {
        return c->timeout_s ? c->timeout_s : CB_TIMEOUT_S;
}


static int code_to_errno(const char *code, long status) {
        static const struct {
                const char *code;
                int r;
        } map[] = {
                { "bad_request", -EINVAL },
                { "unauthorized", CB_ERR_TOKEN },
                { "forbidden", CB_ERR_DENIED },
                { "not_found", -ENOENT },
                { "method_not_allowed", -EOPNOTSUPP },
                { "expired", CB_ERR_EXPIRED },
                { "used_up", CB_ERR_USED_UP },
                { "payload_too_large", -EMSGSIZE },
                { "rate_limited", CB_ERR_RATE_LIMITED },
                { "internal", -EIO },
                { "unavailable", CB_ERR_UNAVAILABLE },
                { "approval_denied", CB_ERR_DENIED },
                { "approval_expired", CB_ERR_DENIED },
                { "already_decided", -EALREADY },
        };

        for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
                if (strcmp(code, map[i].code) == 0)
                        return map[i].r;
        switch (status) {
        case 400: return -EINVAL;
        case 401: return CB_ERR_TOKEN;
        case 403: return CB_ERR_DENIED;
        case 404: return -ENOENT;
        case 405: return -EOPNOTSUPP;
        case 413: return -EMSGSIZE;
        case 429: return CB_ERR_RATE_LIMITED;
        case 503: return CB_ERR_UNAVAILABLE;
        default: return status >= 500 ? -EIO : -EPROTO;
        }
}

/* ---- response bodies, in secure memory ---- */

void cb_lib_body_free(struct body *b) {
        sodium_free(b->p); /* wipes */
        memset(b, 0, sizeof(*b));
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nmemb;

        if (n > CB_RESPONSE_MAX - b->n) {
                b->too_big = true;
                return 0; /* aborts the transfer */
        }
        if (b->n + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                unsigned char *q;

                while (cap < b->n + n + 1)
                        cap *= 2;
                if (cap > CB_RESPONSE_MAX + 1)
                        cap = CB_RESPONSE_MAX + 1;
                q = sodium_malloc(cap);
                if (!q) {
                        b->oom = true;
                        return 0;
                }
                if (b->n)
                        memcpy(q, b->p, b->n);
                sodium_free(b->p);
                b->p = q;
                b->cap = cap;
        }
        memcpy(b->p + b->n, data, n);
        b->n += n;
        b->p[b->n] = 0;
        return n;
}

/* ---- one request ---- */

static bool path_ok(const char *path) {
        size_t n = strlen(path);

        if (n < 4 || n > CB_PATH_MAX || strncmp(path, "/v1/", 4) != 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (path[i] <= 0x20 || path[i] >= 0x7f || path[i] == '#')
                        return false;
        return true;
}

static bool method_ok(const char *m) {
        size_t n = strlen(m);

        if (n == 0 || n > 16)
                return false;
        for (size_t i = 0; i < n; i++)
                if (m[i] < 'A' || m[i] > 'Z')
                        return false;
        return true;
}

/* Perform method path with body (may be NULL for none).  On a 2xx answer
 * return 0 with the body in *resp (caller: cb_lib_body_free) and the status in
 * *ret_status; otherwise the mapped error with the broker's message. */
int cb_lib_http(cb_client *c, const char *method, const char *path, const void *req, size_t req_len,
                struct body *resp, long *ret_status) {
        char url[sizeof("http://localhost") + CB_PATH_MAX], errbuf[CURL_ERROR_SIZE];
        struct curl_slist *hdrs = NULL, *h2;
        struct body b = {};
        long status = 0, oserr = 0;
        CURLcode rc = CURLE_OK;
        CURL *h;
        int r;

        struct prereq pq = { .c = c, .fd = CURL_SOCKET_BAD };

        c->error[0] = 0;
        if (!path_ok(path) || !method_ok(method))
                return cb_lib_set_error(c, -EINVAL, "invalid request line");
        snprintf(url, sizeof(url), "http://localhost%s", path);
        errbuf[0] = 0;
        h = curl_easy_init();
        if (!h)
                return cb_lib_set_error(c, -ENOMEM, "out of memory");
        const char *const headers[] = { "Content-Type: application/json", "Accept: application/json", "Expect:" };
        for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
                h2 = curl_slist_append(hdrs, headers[i]);
                if (!h2) {
                        r = cb_lib_set_error(c, -ENOMEM, "out of memory");
                        goto out;
                }
                hdrs = h2;
        }

#define SETOPT(opt, val)                                  \
        do {                                              \
                if (rc == CURLE_OK)                       \
                        rc = curl_easy_setopt(h, opt, val); \
        } while (0)
        SETOPT(CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
        SETOPT(CURLOPT_URL, url);
        /* Connected, nothing sent yet: is it the broker at the other end? */
        c->wrong_server = false;
        SETOPT(CURLOPT_PREREQFUNCTION, check_server);
        SETOPT(CURLOPT_PREREQDATA, &pq);
        SETOPT(CURLOPT_SOCKOPTFUNCTION, note_socket);
        SETOPT(CURLOPT_SOCKOPTDATA, &pq);
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(CURLOPT_PROTOCOLS_STR, "http");
#else
        SETOPT(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
        SETOPT(CURLOPT_PROXY, ""); /* never a proxy from the environment */
        SETOPT(CURLOPT_NOPROXY, "*");
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_TIMEOUT, timeout_of(c));
        SETOPT(CURLOPT_CONNECTTIMEOUT, CB_TIMEOUT_S);
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CB_RESPONSE_MAX);
        SETOPT(CURLOPT_USERAGENT, "libcredbroker/0.1.0");
        SETOPT(CURLOPT_HTTPHEADER, hdrs);
        SETOPT(CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(CURLOPT_WRITEFUNCTION, on_data);
        SETOPT(CURLOPT_WRITEDATA, &b);
        if (strcmp(method, "GET") == 0 && !req) {
                SETOPT(CURLOPT_HTTPGET, 1L);
        } else {
                /* POSTFIELDS does not copy: req must outlive the transfer
                 * (it does).  curl may copy it into its request buffer,
                 * which our allocator wipes. */
                SETOPT(CURLOPT_POSTFIELDS, req ? (const char *)req : "");
                SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req ? req_len : 0));
                if (strcmp(method, "POST") != 0)
                        SETOPT(CURLOPT_CUSTOMREQUEST, method);
        }
#undef SETOPT
        if (rc != CURLE_OK) {
                r = cb_lib_set_error(c, -EIO, "libcurl refused an option: %s", curl_easy_strerror(rc));
                goto out;
        }

        rc = curl_easy_perform(h);
        if (rc != CURLE_OK && c->wrong_server) {
                r = CB_ERR_DENIED; /* check_server() said why */
                goto out;
        } else if (rc != CURLE_OK) {
                switch (rc) {
                case CURLE_COULDNT_CONNECT:
                        (void)curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
                        r = oserr == EACCES || oserr == EPERM ? CB_ERR_DENIED : CB_ERR_UNREACHABLE;
                        cb_lib_set_error(c, r, "cannot connect to the broker at %s: %s", c->socket_path,
                                  strerror(oserr ? (int)oserr : ECONNREFUSED));
                        break;
                case CURLE_OPERATION_TIMEDOUT:
                        r = cb_lib_set_error(c, -ETIMEDOUT, "no answer from the broker at %s within %ld s",
                                             c->socket_path, timeout_of(c));
                        break;
                case CURLE_OUT_OF_MEMORY:
                        r = cb_lib_set_error(c, -ENOMEM, "out of memory");
                        break;
                case CURLE_FILESIZE_EXCEEDED:
                        r = cb_lib_set_error(c, -EPROTO, "the broker's answer is larger than %d KiB", CB_RESPONSE_MAX / 1024);
                        break;
                default:
                        if (b.oom)
                                r = cb_lib_set_error(c, -ENOMEM, "out of memory");
                        else if (b.too_big)
                                r = cb_lib_set_error(c, -EPROTO, "the broker's answer is larger than %d KiB",
                                              CB_RESPONSE_MAX / 1024);
                        else
                                r = cb_lib_set_error(c, -EPROTO, "talking to the broker at %s: %s", c->socket_path,
                                              errbuf[0] ? errbuf : curl_easy_strerror(rc));
                }
                goto out;
        }
        (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) {
                json_t *o = b.n ? json_loadb((const char *)b.p, b.n, 0, NULL) : NULL;
                const char *code = json_string_value(json_object_get(o, "error"));
                const char *msg = json_string_value(json_object_get(o, "message"));

                r = code_to_errno(code, status);
                if (msg)
                        cb_lib_set_error(c, r, "%s", msg);
                else
                        cb_lib_set_error(c, r, "the broker answered HTTP %ld", status);
                json_decref(o);
                goto out;
        }
        *resp = b;
        memset(&b, 0, sizeof(b));
        if (ret_status)
                *ret_status = status;
        r = 0;
out:
        cb_lib_body_free(&b);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        sodium_memzero(errbuf, sizeof(errbuf));
        return r;
}

/* Parse a 2xx body as a JSON object; the parser's error text may quote the
 * input, so it is never shown. */
json_t *cb_lib_parse_object(cb_client *c, const struct body *b) {
        json_error_t err;
        json_t *o = json_loadb((const char *)b->p, b->n, JSON_REJECT_DUPLICATES, &err);

        sodium_memzero(&err, sizeof(err));
        if (!o || !json_is_object(o)) {
                json_decref(o);
                cb_lib_set_error(c, -EPROTO, "malformed answer from the broker");
                return NULL;
        }
        return o;
}

/* ---- handles ---- */

static int client_new(const char *socket_path, const char *env, const char *fallback, cb_client **ret) {
        cb_client *c;

        if (!ret)
                return -EINVAL;
        pthread_once(&global_once, global_init);
        if (global_r < 0)
                return global_r;
        if (!socket_path || !*socket_path)
                socket_path = secure_getenv(env);
        if (!socket_path || !*socket_path)
                socket_path = fallback;
        if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return -ENAMETOOLONG;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->socket_path = strdup(socket_path);
        if (!c->socket_path) {
                free(c);
                return -ENOMEM;
        }
        /* The configured broker user: the packaged daemon runs as the
         * system user "credbroker" (packaging/); $CREDBROKER_BROKER_UID
         * or --broker-uid names another. */
        pthread_once(&broker_user_once, broker_user_load);
        c->broker_uid = broker_user_uid;
        const char *bu = secure_getenv("CREDBROKER_BROKER_UID");
        if (bu && *bu) {
                char *end;
                errno = 0;
                unsigned long v = strtoul(bu, &end, 10);
                if (errno || *end || v >= UINT32_MAX || bu[0] < '0' || bu[0] > '9') {
                        free(c->socket_path);
                        free(c);
                        return -EINVAL;
                }
                c->broker_uid = (uid_t)v;
        }
        *ret = c;
        return 0;
}

CB_EXPORT int cb_client_new(const char *socket_path, cb_client **ret) {
        return client_new(socket_path, "CREDBROKER_SOCKET", CB_DEFAULT_TOOL_SOCKET, ret);
}

CB_EXPORT int cb_client_new_admin(const char *socket_path, cb_client **ret) {
        return client_new(socket_path, "CREDBROKER_ADMIN_SOCKET", CB_DEFAULT_ADMIN_SOCKET, ret);
}

CB_EXPORT void cb_client_free(cb_client *c) {
        if (!c)
                return;
        free(c->socket_path);
        sodium_memzero(c->error, sizeof(c->error));
        free(c);
}

CB_EXPORT const char *cb_client_error(const cb_client *c) {
        return c ? c->error : "no handle";
}

CB_EXPORT const char *cb_client_socket(const cb_client *c) {
        return c ? c->socket_path : "";
}

/* ---- generic requests (admin routes, introspect) ---- */

CB_EXPORT int cb_client_request(cb_client *c, const char *method, const char *path, const void *body,
                                size_t body_len, char **ret_json, long *ret_status) {
        struct body b = {};
        char *text = NULL;
        long status = 0;
        int r;

        if (!c || !method || !path)
                return -EINVAL;
        c->error[0] = 0;
        /* The one route whose answer is a value has its own call, which
         * keeps the value in wiped memory. */
        if (strncmp(path, "/v1/redeem", 10) == 0 && (path[10] == 0 || path[10] == '?' || path[10] == '/'))
                return cb_lib_set_error(c, -EINVAL, "use cb_client_redeem() for /v1/redeem");
        r = cb_lib_http(c, method, path, body, body_len, &b, &status);
        if (r < 0)
                return r;
        if (ret_json) {
                text = malloc(b.n + 1);
                if (!text) {
                        cb_lib_body_free(&b);
                        return cb_lib_set_error(c, -ENOMEM, "out of memory");
                }
                if (b.n)
                        memcpy(text, b.p, b.n);
                text[b.n] = 0;
                *ret_json = text;
        }
        if (ret_status)
                *ret_status = status;
        cb_lib_body_free(&b);
        return 0;
}
