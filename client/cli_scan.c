/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker scan [FILE|-] and credbroker redact: the broker's leak scanner
 * (broker/scan.h) from the command line.  The CLI never holds a secret: the
 * text goes to the broker, names come back (scan) or the text with every
 * sighting replaced by "[REDACTED:name]" (redact).
 *
 * scan streams the input in one request (any size up to the broker's
 * 1 GiB cap; offsets count from the first byte).  redact runs in rounds of
 * up to 1 MiB (POST /v1/redact: the broker says how much of each round is
 * done and the rest is sent again first), so memory stays bounded however
 * long the input, and output follows input as it comes.
 *
 * Exit: 0 nothing found, 1 something found (scan: listed on stdout; redact:
 * named on stderr), 7 refused, 8 broker unavailable, 9 any other failure.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "credbroker.h"

#define ANSWER_MAX (4 * 1024 * 1024)     /* scan findings answer */
#define ROUND_READ (1024 * 1024)         /* new input per redact round */
#define ROUND_MAX (2 * 1024 * 1024)      /* the broker's cap for one round */

typedef struct xfer {
        int fd;                /* scan input */
        uint64_t left;         /* bytes of a regular file still to send (UINT64_MAX: until EOF) */
        char *ans;             /* answer (scan) or error answer (redact) */
        size_t ans_len;
        bool too_big;
        CURL *h;
        /* redact */
        bool to_stdout;
        int write_err;
        uint64_t consumed, skip;
        bool have_consumed;
        char names[4096];
} xfer;

static int exit_for_status(long status) {
        if (status == 401 || status == 403)
                return CB_EXIT_DENIED;
        if (status == 429 || status == 503)
                return CB_EXIT_UNAVAILABLE;
        return CB_EXIT_SCAN_ERROR;
}

static size_t on_read(char *p, size_t size, size_t n, void *ctx) {
        xfer *x = ctx;
        size_t want = size * n;
        ssize_t k;

        if (x->left != UINT64_MAX && want > x->left)
                want = (size_t)x->left;
        if (!want)
                return 0;
        do
                k = read(x->fd, p, want);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return CURL_READFUNC_ABORT;
        if (x->left != UINT64_MAX) {
                if (k == 0)
                        return CURL_READFUNC_ABORT; /* the file shrank under us */
                x->left -= (uint64_t)k;
        }
        return (size_t)k;
}

static size_t keep_answer(xfer *x, const char *p, size_t n) {
        if (x->ans_len + n > ANSWER_MAX) {
                x->too_big = true;
                return 0;
        }
        char *nb = realloc(x->ans, x->ans_len + n + 1);
        if (!nb)
                return 0;
        x->ans = nb;
        memcpy(x->ans + x->ans_len, p, n);
        x->ans_len += n;
        x->ans[x->ans_len] = 0;
        return n;
}

static size_t on_write(char *p, size_t size, size_t n, void *ctx) {
        xfer *x = ctx;
        long status = 0;

        if (x->to_stdout) {
                curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
                if (status == 200) {
                        int r = cli_write_all(STDOUT_FILENO, p, size * n);
                        if (r < 0) {
                                x->write_err = r;
                                return 0;
                        }
                        return size * n;
                }
        }
        return keep_answer(x, p, size * n);
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
        xfer *x = ctx;
        size_t len = size * n;
        char line[4200];

        if (len >= sizeof(line))
                return len;
        memcpy(line, p, len);
        line[len] = 0;
        line[strcspn(line, "\r\n")] = 0;
        if (strncasecmp(line, "X-Credbroker-Consumed: ", 23) == 0) {
                x->consumed = strtoull(line + 23, NULL, 10);
                x->have_consumed = true;
        } else if (strncasecmp(line, "X-Credbroker-Skip: ", 19) == 0) {
                x->skip = strtoull(line + 19, NULL, 10);
        } else if (strncasecmp(line, "X-Credbroker-Redacted: ", 23) == 0) {
                snprintf(x->names, sizeof(x->names), "%.4000s", line + 23);
        }
        return len;
}

/* The broker's error message from a JSON error answer. */
static const char *message_of(const char *ans, char *buf, size_t cap) {
        json_t *o = ans ? json_loads(ans, 0, NULL) : NULL;
        const char *m = json_string_value(json_object_get(o, "message"));

        snprintf(buf, cap, "%s", m ? m : "unexpected answer from the broker");
        json_decref(o);
        return buf;
}

static int open_socket(bool admin, char **ret_path) {
        cb_client *c = NULL;
        int r = cli_connect(admin, &c);

        if (r < 0)
                return r;
        *ret_path = strdup(cb_client_socket(c));
        cb_client_free(c);
        if (!*ret_path)
                return -cli_fail(-ENOMEM, "out of memory");
        return 0;
}

/* As libcredbroker does (lib.c, check_server): after connect(), before a
 * byte of the text goes out, the server must be root, our own uid or
 * $CREDBROKER_BROKER_UID (--broker-uid).  One transfer at a time here, so
 * one remembered socket. */
static curl_socket_t scan_fd = CURL_SOCKET_BAD;

static int note_socket(void *ud, curl_socket_t fd, curlsocktype purpose) {
        (void)ud, (void)purpose;
        scan_fd = fd;
        return CURL_SOCKOPT_OK;
}

static int check_server(void *ud, char *ip, char *lip, int port, int lport) {
        const char *bu = getenv("CREDBROKER_BROKER_UID");
        unsigned long long want = (unsigned long long)-1;
        struct ucred uc;
        socklen_t len = sizeof(uc);

        (void)ud, (void)ip, (void)lip, (void)port, (void)lport;
        if (bu && cli_parse_u64(bu, UINT32_MAX - 1, &want) < 0)
                want = (unsigned long long)-1;
        if (!bu) { /* the packaged daemon's system user, as libcredbroker assumes */
                struct passwd *pw = getpwnam("credbroker");
                if (pw)
                        want = pw->pw_uid;
        }
        if (scan_fd == CURL_SOCKET_BAD || getsockopt(scan_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 ||
            len != sizeof(uc)) {
                fprintf(stderr, "credbroker: cannot tell who serves the socket (SO_PEERCRED): nothing sent\n");
                return CURL_PREREQFUNC_ABORT;
        }
        if (uc.uid != 0 && uc.uid != getuid() && (unsigned long long)uc.uid != want) {
                fprintf(stderr, "credbroker: the socket is served by uid %u, not root or our own uid: not the "
                                "broker; nothing sent (--broker-uid %u if it is)\n", (unsigned)uc.uid,
                        (unsigned)uc.uid);
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

static CURL *new_handle(const char *socket_path, const char *route, char *errbuf) {
        CURL *h = curl_easy_init();
        CURLcode rc = CURLE_OK;
        char url[64];

        if (!h)
                return NULL;
        snprintf(url, sizeof(url), "http://localhost%s", route);
#define SETOPT(opt, val)                                    \
        do {                                                \
                if (rc == CURLE_OK)                         \
                        rc = curl_easy_setopt(h, opt, val); \
        } while (0)
        SETOPT(CURLOPT_UNIX_SOCKET_PATH, socket_path);
        SETOPT(CURLOPT_URL, url);
        SETOPT(CURLOPT_SOCKOPTFUNCTION, note_socket);
        SETOPT(CURLOPT_PREREQFUNCTION, check_server);
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(CURLOPT_PROTOCOLS_STR, "http");
#else
        SETOPT(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
        SETOPT(CURLOPT_PROXY, "");
        SETOPT(CURLOPT_NOPROXY, "*");
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_CONNECTTIMEOUT, 30L);
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_USERAGENT, "credbroker/0.1.0");
        SETOPT(CURLOPT_ERRORBUFFER, errbuf);
        /* Large pieces: fewer system calls and wakeups per megabyte
         * (a streamed scan; a redact round gains nothing from them). */
        if (strcmp(route, "/v1/scan") == 0)
                SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
#undef SETOPT
        if (rc != CURLE_OK) {
                curl_easy_cleanup(h);
                return NULL;
        }
        return h;
}

static int options(int argc, char **argv, const char *usage, bool *admin, bool *json) {
        static const struct option opts[] = {
                { "admin", no_argument, NULL, 'a' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int o;

        optind = 1;
        while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (o) {
                case 'a':
                        *admin = true;
                        break;
                case 'j':
                        if (!json)
                                return -cli_usage("%s: unknown option '--json'", argv[0]);
                        *json = true;
                        break;
                case 'h':
                        printf("%s", usage);
                        return 1;
                default:
                        return -cli_usage("%s: unknown or incomplete option '%.64s'", argv[0], argv[optind - 1]);
                }
        }
        return 0;
}

static void put_safe(const char *s) {
        for (; *s; s++)
                putchar((*s >= 0x20 && *s < 0x7f) ? *s : '?');
}

int cmd_scan(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker scan [--admin] [--json] [FILE|-]\n"
                "Send FILE (or stdin) to the broker's leak scanner; print one line per sighting:\n"
                "NAME<TAB>KIND<TAB>OFFSET (NAME: a secret's name or a token's accessor; never a value).\n"
                "Exit 0: nothing found; 1: something found; 7 refused; 8 unavailable; 9 other failure.\n"
                "--admin: use the admin socket (operators); otherwise tools.sock, with a \"scan\" grant\n"
                "(names without offsets, within the policy's scan_budget).\n";
        bool admin = false, json = false;
        char *sock = NULL, errbuf[CURL_ERROR_SIZE] = "", msg[512];
        struct curl_slist *hdrs = NULL;
        xfer x = { .fd = STDIN_FILENO, .left = UINT64_MAX };
        json_t *o = NULL;
        struct stat st;
        long status = 0;
        int r;

        r = options(argc, argv, usage, &admin, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (argc - optind > 1)
                return cli_usage("scan takes at most one FILE");
        if (argc - optind == 1 && strcmp(argv[optind], "-") != 0) {
                x.fd = open(argv[optind], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (x.fd < 0) {
                        int e = errno;
                        fprintf(stderr, "credbroker: scan: %s: %s\n", argv[optind], strerror(e));
                        return e == ENOENT ? CB_EXIT_NOTFOUND : CB_EXIT_SCAN_ERROR;
                }
        }
        r = open_socket(admin, &sock);
        if (r < 0) {
                r = -r == CB_EXIT_FAIL ? CB_EXIT_SCAN_ERROR : -r;
                goto out;
        }
        CURL *h = new_handle(sock, "/v1/scan", errbuf);
        if (!h) {
                fprintf(stderr, "credbroker: scan: out of memory\n");
                r = CB_EXIT_SCAN_ERROR;
                goto out;
        }
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
        hdrs = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        if (fstat(x.fd, &st) == 0 && S_ISREG(st.st_mode)) {
                x.left = (uint64_t)st.st_size;
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
        } /* else chunked */
        x.h = h;
        CURLcode rc = hdrs ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        if (rc != CURLE_OK && !(status && x.ans)) {
                fprintf(stderr, "credbroker: scan: %s\n", errbuf[0] ? errbuf : curl_easy_strerror(rc));
                r = rc == CURLE_COULDNT_CONNECT ? CB_EXIT_UNAVAILABLE : CB_EXIT_SCAN_ERROR;
                goto out;
        }
        if (status != 200) {
                fprintf(stderr, "credbroker: scan: %s%s\n", message_of(x.ans, msg, sizeof(msg)),
                        status == 403 && !admin ? " (operators: --admin)" : "");
                r = exit_for_status(status);
                goto out;
        }
        o = x.ans ? json_loads(x.ans, 0, NULL) : NULL;
        json_t *f = json_object_get(o, "findings");
        if (!json_is_array(f)) {
                fprintf(stderr, "credbroker: scan: malformed answer from the broker\n");
                r = CB_EXIT_SCAN_ERROR;
                goto out;
        }
        if (json) {
                printf("%s\n", x.ans);
        } else {
                size_t i;
                json_t *e;
                json_array_foreach(f, i, e) {
                        put_safe(json_string_value(json_object_get(e, "name")) ?: "?");
                        putchar('\t');
                        put_safe(json_string_value(json_object_get(e, "kind")) ?: "?");
                        /* tools.sock answers carry no offsets (only --admin's do). */
                        json_t *off = json_object_get(e, "offset");
                        if (json_is_integer(off))
                                printf("\t%" JSON_INTEGER_FORMAT "\n", json_integer_value(off));
                        else
                                fputs("\t-\n", stdout);
                }
                if (json_is_true(json_object_get(o, "truncated")))
                        fprintf(stderr, "credbroker: scan: %" JSON_INTEGER_FORMAT " sightings, the first %zu listed\n",
                                json_integer_value(json_object_get(o, "total")), json_array_size(f));
        }
        r = json_array_size(f) ? CB_EXIT_FAIL : CB_EXIT_OK;
out:
        if (x.fd > STDIN_FILENO)
                close(x.fd);
        curl_slist_free_all(hdrs);
        json_decref(o);
        free(x.ans);
        free(sock);
        return r;
}

/* Fill buf up to want bytes from stdin: stops early (having read something)
 * when no more input is ready, so output follows a slow producer.  Returns
 * bytes read, 0 at EOF, -errno. */
static ssize_t read_some(unsigned char *buf, size_t want) {
        size_t got = 0;

        while (got < want) {
                if (got) {
                        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                        if (poll(&p, 1, 0) <= 0)
                                break;
                }
                ssize_t k = read(STDIN_FILENO, buf + got, want - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                got += (size_t)k;
        }
        return (ssize_t)got;
}

/* Add the names of a round to the list of all names (comma separated). */
static void merge_names(char *all, size_t cap, const char *round) {
        char tmp[4096], *save = NULL;

        snprintf(tmp, sizeof(tmp), "%s", round);
        for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                bool dup = false;
                char cp[4096], *s2 = NULL;
                snprintf(cp, sizeof(cp), "%s", all);
                for (char *u = strtok_r(cp, ",", &s2); u && !dup; u = strtok_r(NULL, ",", &s2))
                        dup = strcmp(u, t) == 0;
                size_t n = strlen(all);
                if (!dup && n + strlen(t) + 2 < cap)
                        snprintf(all + n, cap - n, "%s%s", n ? "," : "", t);
        }
}

int cmd_redact(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker redact [--admin]\n"
                "Copy stdin to stdout, each live secret (raw or encoded) and credbroker token replaced\n"
                "by [REDACTED:NAME], through the broker (the CLI never holds a value).  Streams: memory\n"
                "stays bounded, output follows input.  Names of what was redacted go to stderr.\n"
                "Exit 0: nothing redacted; 1: something redacted; 7 refused; 8 unavailable; 9 other failure.\n";
        bool admin = false, eof = false, final = false;
        char *sock = NULL, errbuf[CURL_ERROR_SIZE] = "", msg[512], all[4096] = "";
        unsigned char *buf = NULL;
        size_t len = 0;
        uint64_t skip = 0;
        CURL *h = NULL;
        int r;

        r = options(argc, argv, usage, &admin, NULL);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (argc != optind)
                return cli_usage("redact takes no operands (it filters stdin to stdout)");
        r = open_socket(admin, &sock);
        if (r < 0)
                return -r == CB_EXIT_FAIL ? CB_EXIT_SCAN_ERROR : -r;
        buf = malloc(ROUND_MAX);
        h = new_handle(sock, "/v1/redact", errbuf);
        if (!buf || !h) {
                r = CB_EXIT_SCAN_ERROR;
                fprintf(stderr, "credbroker: redact: out of memory\n");
                goto out;
        }
        while (!final) {
                if (!eof) {
                        size_t want = ROUND_MAX - len < ROUND_READ ? ROUND_MAX - len : ROUND_READ;
                        ssize_t k = read_some(buf + len, want);
                        if (k < 0) {
                                fprintf(stderr, "credbroker: redact: reading stdin: %s\n", strerror((int)-k));
                                r = CB_EXIT_SCAN_ERROR;
                                goto out;
                        }
                        eof = k == 0;
                        len += (size_t)k;
                }
                final = eof;
                if (!final && len < ROUND_MAX && len < 64 * 1024) {
                        /* Wait for a useful amount unless the producer paused. */
                        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                        if (poll(&p, 1, 50) > 0)
                                continue;
                }
                char hs[64], hf[32];
                struct curl_slist *hdrs = NULL;
                snprintf(hs, sizeof(hs), "X-Credbroker-Skip: %" PRIu64, skip);
                snprintf(hf, sizeof(hf), "X-Credbroker-Final: %d", final ? 1 : 0);
                const char *list[] = { "Content-Type: application/octet-stream", "Expect:", hs, hf };
                for (size_t i = 0; i < 4; i++) {
                        struct curl_slist *n2 = curl_slist_append(hdrs, list[i]);
                        if (!n2) {
                                curl_slist_free_all(hdrs);
                                r = CB_EXIT_SCAN_ERROR;
                                goto out;
                        }
                        hdrs = n2;
                }
                xfer x = { .to_stdout = true, .h = h };
                long status = 0;
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)buf);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
                curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
                curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
                curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
                CURLcode rc = curl_easy_perform(h);
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
                curl_slist_free_all(hdrs);
                if (x.write_err) {
                        fprintf(stderr, "credbroker: redact: writing stdout: %s\n", strerror(-x.write_err));
                        free(x.ans);
                        r = CB_EXIT_SCAN_ERROR;
                        goto out;
                }
                if (rc != CURLE_OK || status != 200) {
                        if (status && status != 200)
                                fprintf(stderr, "credbroker: redact: %s%s\n", message_of(x.ans, msg, sizeof(msg)),
                                        status == 403 && !admin ? " (operators: --admin)" : "");
                        else
                                fprintf(stderr, "credbroker: redact: %s\n",
                                        errbuf[0] ? errbuf : curl_easy_strerror(rc));
                        free(x.ans);
                        r = status ? exit_for_status(status)
                                   : rc == CURLE_COULDNT_CONNECT ? CB_EXIT_UNAVAILABLE : CB_EXIT_SCAN_ERROR;
                        goto out;
                }
                free(x.ans);
                if (!x.have_consumed || x.consumed > len || x.skip > len - x.consumed) {
                        fprintf(stderr, "credbroker: redact: malformed answer from the broker\n");
                        r = CB_EXIT_SCAN_ERROR;
                        goto out;
                }
                merge_names(all, sizeof(all), x.names);
                if (!final && x.consumed == 0 && len == ROUND_MAX) {
                        fprintf(stderr, "credbroker: redact: the broker made no progress on a full round\n");
                        r = CB_EXIT_SCAN_ERROR;
                        goto out;
                }
                /* The stale tail is overwritten next round or wiped at the end. */
                memmove(buf, buf + x.consumed, len - x.consumed);
                len -= x.consumed;
                skip = x.skip;
        }
        if (all[0]) {
                fprintf(stderr, "credbroker: redacted: %s\n", all);
                r = CB_EXIT_FAIL;
        } else {
                r = CB_EXIT_OK;
        }
out:
        if (h)
                curl_easy_cleanup(h);
        if (buf) {
                sodium_memzero(buf, ROUND_MAX);
                free(buf);
        }
        free(sock);
        return r;
}
