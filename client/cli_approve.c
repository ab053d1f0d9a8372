/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The approval gate's verbs: approvals (list held token requests with the
 * requester's identity), approve ID, deny ID — admin.sock, through
 * cb_client_request — and the "waiting for approval" line the tool verbs
 * print while libcredbroker waits (cli_on_pending).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "credbroker.h"

int cli_on_pending(const char *approval_id, unsigned timeout_s, void *userdata) {
        (void)userdata;
        /* The ID is hex (checked by the library): safe on a terminal. */
        /* No approve command here: this line reaches whatever runs the tool
         * (an agent's model included), which must not be handed the words
         * that would approve its own request. */
        fprintf(stderr, "credbroker: waiting for operator approval %s (up to %u s)\n", approval_id, timeout_s);
        fflush(stderr);
        return 0;
}

/* Broker-supplied text on a terminal: no control characters. */
static void put_safe(FILE *f, const char *s) {
        for (; s && *s; s++)
                fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static const char *str(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "?";
}

static long long num(json_t *o, const char *k) {
        return (long long)json_integer_value(json_object_get(o, k));
}

/* One admin request; *ret the parsed object answer.  0 or the exit code
 * negated after printing why. */
static int call(const char *verb, const char *method, const char *path, json_t **ret, char **ret_text) {
        cb_client *c = NULL;
        char *text = NULL;
        json_t *o;
        int r;

        r = cli_connect(1, &c);
        if (r < 0)
                return r;
        r = cb_client_request(c, method, path, NULL, 0, &text, NULL);
        if (r < 0) {
                r = -cli_fail_client(r, c, verb);
                goto out;
        }
        o = json_loads(text, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                r = -cli_fail(-EPROTO, "%s: malformed answer from the broker", verb);
                goto out;
        }
        *ret = o;
        if (ret_text) {
                *ret_text = text;
                text = NULL;
        }
        r = 0;
out:
        free(text);
        cb_client_free(c);
        return r;
}

static int opts(int argc, char **argv, const char *usage, bool *json) {
        static const struct option o[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int ch;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", o, NULL)) != -1) {
                switch (ch) {
                case 'j':
                        if (!json)
                                return -cli_usage("%s: unknown option '--json'", argv[0]);
                        *json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        return -cli_usage("%s: unknown or incomplete option '%.64s'", argv[0], argv[optind - 1]);
                }
        }
        return 0;
}

int cmd_approvals(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker approvals [--json]\n"
                "  Token requests held for approval (grants with \"approval\": true), with the\n"
                "  requester's identity: uid, pid, executable path and SHA-256, client, secret,\n"
                "  use, ttl; their age and the seconds left before they time out (denied).\n"
                "  Decided requests stay listed until their requester collects the result.\n"
                "  Decide with 'credbroker approve ID' or 'credbroker deny ID' (8+ digits of ID).\n";
        json_t *o = NULL, *arr, *e;
        char *text = NULL;
        bool json = false;
        size_t i;
        int r;

        r = opts(argc, argv, usage, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (argc - optind != 0)
                return cli_usage("approvals takes no arguments");
        r = call("approvals", "GET", "/v1/admin/approvals", &o, &text);
        if (r < 0)
                return -r;
        if (json) {
                printf("%s\n", text);
                goto out;
        }
        arr = json_object_get(o, "approvals");
        if (json_array_size(arr) == 0) {
                printf("no token requests held for approval (timeout %lld s)\n", num(o, "timeout"));
                goto out;
        }
        json_array_foreach(arr, i, e) {
                json_t *by = json_object_get(e, "decided_by");
                printf("%s  %s", str(e, "id"), str(e, "state"));
                if (json_is_object(by))
                        printf(" by uid %lld", num(by, "uid"));
                printf("  age %llds", num(e, "age"));
                if (strcmp(str(e, "state"), "pending") == 0)
                        printf(", times out in %llds", num(e, "expires_in"));
                fputs("\n  secret ", stdout);
                put_safe(stdout, str(e, "secret"));
                printf(" (%s, ttl %llds, bound to %s) for client ", str(e, "use"), num(e, "ttl"), str(e, "bind"));
                put_safe(stdout, str(e, "client"));
                if (json_is_true(json_object_get(e, "compromised")))
                        fputs("\n  COMPROMISED: this secret was seen leaked; no token is issued until it is rotated",
                              stdout);
                printf("\n  uid %lld gid %lld pid %lld exe ", num(e, "uid"), num(e, "gid"), num(e, "pid"));
                put_safe(stdout, str(e, "exe"));
                fputs("\n  sha256 ", stdout);
                put_safe(stdout, str(e, "exe_sha256"));
                fputs("\n", stdout);
        }
out:
        free(text);
        json_decref(o);
        return CB_EXIT_OK;
}

static int decide(int argc, char **argv, bool approve) {
        static const char usage_approve[] =
                "usage: credbroker approve ID [--json]\n"
                "  Approve a held token request (see 'credbroker approvals'; ID: 8 to 32 hex digits,\n"
                "  a unique prefix).  The requester's own uid cannot approve it.  The audit log\n"
                "  records who approved (uid, pid, executable) and the requester.\n"
                "  --json: the broker's answer (approval_id, state, secret, client, requester).\n";
        static const char usage_deny[] =
                "usage: credbroker deny ID [--json]\n"
                "  Deny a held token request (see 'credbroker approvals'); the requester is told.\n"
                "  --json: the broker's answer (approval_id, state, secret, client, requester).\n";
        const char *verb = approve ? "approve" : "deny", *id;
        char path[128];
        json_t *o = NULL, *req;
        char *text = NULL;
        bool json = false;
        int r;

        r = opts(argc, argv, approve ? usage_approve : usage_deny, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (argc - optind != 1)
                return cli_usage("%s takes exactly one ID", verb);
        id = argv[optind];
        if (strlen(id) < 8 || strlen(id) > 32 || strspn(id, "0123456789abcdefABCDEF") != strlen(id))
                return cli_usage("%s: an approval ID is 8 to 32 hex digits", verb);
        snprintf(path, sizeof(path), "/v1/admin/approvals/%s/%s", id, verb);
        r = call(verb, "POST", path, &o, json ? &text : NULL);
        if (r < 0)
                return -r;
        if (json) {
                printf("%s\n", text);
                free(text);
                json_decref(o);
                return CB_EXIT_OK;
        }
        req = json_object_get(o, "requester");
        printf("%s %s: '", approve ? "approved" : "denied", str(o, "approval_id"));
        put_safe(stdout, str(o, "secret"));
        printf("' for uid %lld pid %lld (", num(req, "uid"), num(req, "pid"));
        put_safe(stdout, str(req, "exe"));
        fputs(")\n", stdout);
        json_decref(o);
        return CB_EXIT_OK;
}

int cmd_approve(int argc, char **argv) {
        return decide(argc, argv, true);
}

int cmd_deny(int argc, char **argv) {
        return decide(argc, argv, false);
}
