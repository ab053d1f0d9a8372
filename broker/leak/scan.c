/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leak scanning in the daemon (scan.h), the scanning half: the live
 * matcher and its rebuild, and the routes POST /v1/scan and POST /v1/redact
 * (scan jobs streaming a request body through the matcher).  A tools.sock
 * caller (a "scan" grant) gets names without offsets, within the policy's
 * per-uid scan_budget (requests and bytes a minute), and each of its
 * sightings raises a scan_hit alert (docs/hardening-state.md).  What is done
 * about a sighting (the leak response, compromised marks in the store, the
 * token gate) is in leak.c; scan_internal.h is the seam between the two.
 *
 * The live matcher is built from the store on first use after a change
 * (scanner_rebuild() drops the old one at once) and shared by reference:
 * a scan in flight keeps the matcher it started with; the last reference
 * wipes it (cb_matcher_free: sodium_free of the pattern block).  The daemon
 * holds a value only while encoding it (cb_secbuf, wiped).
 *
 * A job remembers what it sighted (scan_seen) and hands the list to
 * leak_respond() (its own lock) once the body is read, before the reply.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "alert.h"
#include "error.h"
#include "scan.h"
#include "scan_internal.h"
#include "match.h"

/* ---- the live matcher --------------------------------------------------- */

typedef struct live {
        cb_matcher *m;
        unsigned refs; /* under live_lock */
} live;

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
/* The matcher in force and what describes it: under build_lock, which a
 * (re)build holds -- CPU and memory work on the store's read side, never
 * a writer's I/O; a scan that needs the matcher waits for its build (a
 * matcher behind the live values would miss a new one).  Lock order:
 * the store's writers' mutex, build_lock, the store's read side, live_lock. */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;
static live *cur;
static uint64_t cur_generation; /* the store generation cur was built from */
static char **short_names;     /* live values too short to scan */
static size_t n_short;
static size_t n_live_versions;

static void live_release(live *lv) {
        bool last;

        if (!lv)
                return;
        pthread_mutex_lock(&live_lock);
        last = --lv->refs == 0;
        pthread_mutex_unlock(&live_lock);
        if (last) {
                cb_matcher_free(lv->m);
                free(lv);
        }
}

static void clear_short(void) {
        for (size_t i = 0; i < n_short; i++)
                free(short_names[i]);
        free(short_names);
        short_names = NULL;
        n_short = 0;
}

static void rebuild_locked(void) {
        live_release(cur);
        cur = NULL;
}

void scanner_rebuild(void) {
        pthread_mutex_lock(&build_lock);
        rebuild_locked();
        pthread_mutex_unlock(&build_lock);
}

static int add_short(const char *name) {
        for (size_t i = 0; i < n_short; i++)
                if (strcmp(short_names[i], name) == 0)
                        return 0;
        char **nv = realloc(short_names, (n_short + 1) * sizeof(*nv));
        if (!nv)
                return -ENOMEM;
        short_names = nv;
        if (!(short_names[n_short] = strdup(name)))
                return -ENOMEM;
        n_short++;
        return 0;
}

/* Build from the store: every version not disabled or destroyed.  Under
 * build_lock; takes the store's read side. */
static int build_read(void);

static int build(void) {
        cb_store_read_lock(leak_cur.store);
        int r = build_read();
        cb_store_read_unlock(leak_cur.store);
        return r;
}

static int build_read(void) {
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_TOKENS);
        const char **names = NULL;
        size_t n = 0, versions = 0;
        live *lv = NULL;
        int r;

        clear_short();
        if (!b)
                return cb_error_set(-ENOMEM, "scanner: out of memory");
        r = cb_store_names(leak_cur.store, &names, &n);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                const cb_version_info *vi;
                size_t nv;

                if (cb_store_versions(leak_cur.store, names[i], &vi, &nv) < 0)
                        continue;
                for (size_t k = 0; k < nv; k++) {
                        cb_secbuf *val = NULL;

                        if (vi[k].state == CB_VS_DISABLED || vi[k].state == CB_VS_DESTROYED)
                                continue;
                        /* Leaked versions too: a leaked value must keep being recognised. */
                        r = cb_store_get_ex(leak_cur.store, names[i], vi[k].version, true, CB_STORE_LEAKED_OK, &val,
                                            NULL, NULL);
                        if (r < 0) {
                                r = cb_error_set(r, "scanner: cannot read '%s' version %" PRIu32 ": %s", names[i],
                                                 vi[k].version, cb_error_last());
                                goto out;
                        }
                        r = cb_matcher_builder_add(b, names[i], vi[k].version, cb_secbuf_data(val),
                                                   cb_secbuf_len(val));
                        cb_secbuf_free(val);
                        if (r == -EMSGSIZE)
                                r = add_short(names[i]);
                        else
                                versions++;
                        if (r < 0) {
                                r = cb_error_set(r, "scanner: cannot add '%s': %s", names[i], strerror(-r));
                                goto out;
                        }
                }
        }
        lv = calloc(1, sizeof(*lv));
        if (!lv) {
                r = cb_error_set(-ENOMEM, "scanner: out of memory");
                goto out;
        }
        r = cb_matcher_build(b, &lv->m);
        b = NULL;
        if (r < 0) {
                free(lv);
                r = cb_error_set(r, "scanner: cannot build the matcher: %s", strerror(-r));
                goto out;
        }
        lv->refs = 1;
        cur = lv;
        cur_generation = cb_store_generation(leak_cur.store);
        n_live_versions = versions;
        r = 0;
out:
        cb_matcher_builder_free(b);
        free(names);
        return r;
}

static uint64_t store_generation(void) {
        cb_store_read_lock(leak_cur.store);
        uint64_t g = cb_store_generation(leak_cur.store);
        cb_store_read_unlock(leak_cur.store);
        return g;
}

void scanner_sweep(void) {
        leak_flush_pending(); /* the token gate reads marks, never retries them */
        pthread_mutex_lock(&build_lock);
        if (cur && cur_generation != store_generation())
                rebuild_locked();
        pthread_mutex_unlock(&build_lock);
}

/* A reference to the live matcher, built if needed (any thread). */
static live *live_get(void) {
        live *lv = NULL;

        pthread_mutex_lock(&build_lock);
        /* Every store write moves the generation: a write that did not call
         * scanner_rebuild() (rotation, version changes, imports, the grace
         * sweep) still never leaves the matcher behind the live values. */
        if (cur && cur_generation != store_generation())
                rebuild_locked();
        if (cur || build() == 0) {
                lv = cur;
                pthread_mutex_lock(&live_lock);
                lv->refs++;
                pthread_mutex_unlock(&live_lock);
        }
        pthread_mutex_unlock(&build_lock);
        return lv;
}

struct cb_matcher *scanner_matcher_ref(void) {
        live *lv = live_get();
        cb_matcher *m = lv ? cb_matcher_ref(lv->m) : NULL;

        live_release(lv);
        return m;
}

void scanner_shutdown(void) {
        leak_shutdown();
        scanner_rebuild();
        clear_short();
}

json_t *scanner_status_json(void) {
        json_t *o = json_object(), *shorts = json_array(), *comp = json_array();
        live *lv = live_get();

        if (!lv)
                json_object_set_new(o, "error", json_string(cb_error_last()));
        pthread_mutex_lock(&build_lock);
        if (lv) {
                json_object_set_new(o, "secret_versions", json_integer((json_int_t)n_live_versions));
                json_object_set_new(o, "patterns", json_integer((json_int_t)cb_matcher_n_patterns(lv->m)));
        }
        json_object_set_new(o, "min_length", json_integer(CB_SCAN_MIN_SECRET));
        for (size_t i = 0; i < n_short; i++)
                json_array_append_new(shorts, json_string(short_names[i]));
        pthread_mutex_unlock(&build_lock);
        live_release(lv);
        leak_list_compromised(comp);
        json_object_set_new(o, "not_scannable", shorts);
        json_object_set_new(o, "compromised", comp);
        return o;
}

/* ---- jobs --------------------------------------------------------------- */

#define SEEN_MAX 4096 /* distinct tokens remembered per request (secrets: all, bounded by live versions) */
#define JOBS_PER_UID 4 /* concurrent /v1/scan and /v1/redact requests per uid on tools.sock */
#define OUT_SLACK (64 * 1024) /* a redact round's output: at most 2x its input + this */
#define OUT_PREALLOC (256 * 1024) /* allocated before the body arrives, at most */

struct scan_job {
        live *lv;
        cb_scan_stream *st;
        bool redact, final, too_large;
        int error;
        uint64_t bytes, skip;
        json_t *findings;
        uint64_t total;
        scan_seen *seen;
        size_t n_seen, cap_seen, last_seen, n_tokens;
        uid_t uid;
        bool counted; /* holds one of uid's JOBS_PER_UID; also: a tools.sock caller (budget, no offsets) */
        bool over_budget;
        uint64_t budget_bytes; /* the policy's bytes per minute, read at the start */
        unsigned char *out;           /* redact: the round's output */
        size_t out_len, out_cap;
};

/* Concurrent jobs per uid (tools.sock): a small table, under jobs_lock. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        uid_t uid;
        unsigned n;
} jobs_by_uid[64];

static bool jobs_take(uid_t uid) {
        bool ok = false;
        size_t free_slot = SIZE_MAX;
        pthread_mutex_lock(&jobs_lock);
        for (size_t i = 0; i < sizeof(jobs_by_uid) / sizeof(*jobs_by_uid); i++) {
                if (jobs_by_uid[i].n && jobs_by_uid[i].uid == uid) {
                        if ((ok = jobs_by_uid[i].n < JOBS_PER_UID))
                                jobs_by_uid[i].n++;
                        goto out;
                }
                if (!jobs_by_uid[i].n && free_slot == SIZE_MAX)
                        free_slot = i;
        }
        if (free_slot != SIZE_MAX) { /* else: 64 uids scanning at once; refuse the 65th */
                jobs_by_uid[free_slot].uid = uid;
                jobs_by_uid[free_slot].n = 1;
                ok = true;
        }
out:
        pthread_mutex_unlock(&jobs_lock);
        return ok;
}

/* The scan budget (policy "scan_budget"): requests and bytes per uid and
 * minute on tools.sock.  A fixed one-minute window per uid, in a small
 * table under jobs_lock; a uid not in it (table full of uids active this
 * minute) is refused, like the 65th concurrent uid above. */
#define BUDGET_SLOTS 256
struct budget_slot {
        uid_t uid;
        uint64_t minute, requests, bytes;
};
static struct budget_slot budget[BUDGET_SLOTS];

/* Charge requests and bytes to uid's current minute; false (nothing
 * charged) when that would go over max_requests / max_bytes. */
static bool budget_charge(uid_t uid, uint64_t requests, uint64_t bytes, uint64_t max_requests, uint64_t max_bytes) {
        uint64_t minute = (uint64_t)time(NULL) / 60;
        size_t slot = SIZE_MAX;
        bool ok = false;

        pthread_mutex_lock(&jobs_lock);
        for (size_t i = 0; i < BUDGET_SLOTS; i++) {
                if (budget[i].minute == minute && budget[i].uid == uid) {
                        slot = i;
                        break;
                }
                if (slot == SIZE_MAX && budget[i].minute != minute)
                        slot = i; /* free, or a past minute's */
        }
        if (slot != SIZE_MAX) {
                if (budget[slot].minute != minute || budget[slot].uid != uid)
                        budget[slot] = (struct budget_slot){ .uid = uid, .minute = minute };
                if (budget[slot].requests + requests <= max_requests && budget[slot].bytes + bytes <= max_bytes) {
                        budget[slot].requests += requests;
                        budget[slot].bytes += bytes;
                        ok = true;
                }
        }
        pthread_mutex_unlock(&jobs_lock);
        return ok;
}

static void jobs_put(uid_t uid) {
        pthread_mutex_lock(&jobs_lock);
        for (size_t i = 0; i < sizeof(jobs_by_uid) / sizeof(*jobs_by_uid); i++)
                if (jobs_by_uid[i].n && jobs_by_uid[i].uid == uid) {
                        jobs_by_uid[i].n--;
                        break;
                }
        pthread_mutex_unlock(&jobs_lock);
}

static void job_free(struct scan_job *j) {
        if (!j)
                return;
        if (j->counted)
                jobs_put(j->uid);
        cb_scan_stream_free(j->st);
        live_release(j->lv);
        json_decref(j->findings);
        free(j->seen);
        if (j->out) {
                sodium_memzero(j->out, j->out_cap);
                free(j->out);
        }
        free(j);
}

void scan_request_done(request *rq) {
        job_free(rq->scan);
        rq->scan = NULL;
}

static bool same(const scan_seen *s, const char *name, uint32_t version, bool token) {
        return s->token == token && s->version == version && strcmp(s->name, name) == 0;
}

static int remember(struct scan_job *j, const char *name, uint32_t version, enum cb_scan_kind kind, bool token) {
        /* A text tends to repeat the same secret: try the last one first. */
        if (j->last_seen < j->n_seen && same(&j->seen[j->last_seen], name, version, token)) {
                j->seen[j->last_seen].forms |= 1u << kind;
                return 0;
        }
        for (size_t i = 0; i < j->n_seen; i++)
                if (same(&j->seen[i], name, version, token)) {
                        j->seen[i].forms |= 1u << kind;
                        j->last_seen = i;
                        return 0;
                }
        /* Only tokens are capped: a tool printing thousands of its own
         * tokens must not push a real secret's sighting out of the leak
         * response.  Secrets are bounded by the live versions. */
        if (token && j->n_tokens == SEEN_MAX)
                return 0; /* the findings still list it; the leak response covers the first SEEN_MAX */
        if (j->n_seen == j->cap_seen) {
                size_t nc = j->cap_seen ? j->cap_seen * 2 : 8;
                scan_seen *ns = realloc(j->seen, nc * sizeof(*ns));
                if (!ns)
                        return -ENOMEM; /* fail the request rather than drop a sighting */
                j->seen = ns;
                j->cap_seen = nc;
        }
        j->last_seen = j->n_seen;
        scan_seen *s = &j->seen[j->n_seen++];
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->version = version;
        s->forms = 1u << kind;
        s->token = token;
        if (token)
                j->n_tokens++;
        return 0;
}

static int on_hit(void *ctx, const cb_scan_hit *h, char label[CB_SCAN_LABEL_MAX]) {
        struct scan_job *j = ctx;
        char acc[CB_ACCESSOR_LEN + 1] = "";

        if (h->kind == CB_SK_TOKEN) {
                const cb_token_info *info; /* the table's own lock: no other needed */
                if (cb_tokens_peek(*leak_cur.tokens, h->token, CB_TOKEN_LEN, &info) == 0)
                        memcpy(acc, info->accessor, sizeof(acc));
                if (acc[0])
                        snprintf(label, CB_SCAN_LABEL_MAX, "%s", acc);
                if (remember(j, acc, 0, h->kind, true) < 0)
                        return -ENOMEM;
        } else if (remember(j, h->name, h->version, h->kind, false) < 0) {
                return -ENOMEM;
        }
        j->total++;
        /* Offsets only on the admin socket: to a tools.sock caller an offset
         * says which of many guesses in one body was the secret. */
        if (j->findings && json_array_size(j->findings) < CB_SCAN_FINDINGS_MAX) {
                json_t *f = json_pack("{s:s, s:s}", "kind", cb_scan_kind_name(h->kind), "name",
                                      h->kind == CB_SK_TOKEN ? (acc[0] ? acc : "unknown") : h->name);
                if (f && !j->counted)
                        json_object_set_new(f, "offset", json_integer((json_int_t)h->start));
                json_array_append_new(j->findings, f);
        }
        return 0;
}

static int on_out(void *ctx, const void *p, size_t n) {
        struct scan_job *j = ctx;

        /* Markers longer than what they replace (a short value, a long
         * name) must not turn a round into many times its size. */
        if (j->out_len + n > 2 * j->bytes + OUT_SLACK)
                return -EFBIG;
        if (j->out_len + n > j->out_cap) {
                size_t nc = j->out_cap ? j->out_cap : 64 * 1024;
                while (nc < j->out_len + n)
                        nc *= 2;
                unsigned char *nb = malloc(nc);
                if (!nb)
                        return -ENOMEM;
                if (j->out) {
                        memcpy(nb, j->out, j->out_len);
                        sodium_memzero(j->out, j->out_cap);
                        free(j->out);
                }
                j->out = nb;
                j->out_cap = nc;
        }
        memcpy(j->out + j->out_len, p, n);
        j->out_len += n;
        return 0;
}

static int header_u64(request *rq, const char *name, uint64_t max, uint64_t *ret) {
        const char *v = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
        char *end;

        *ret = 0;
        if (!v)
                return 0;
        if (*v < '0' || *v > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || x > max)
                return -EINVAL;
        *ret = x;
        return 0;
}

static void scan_budget_alert(request *rq, const char *what, uint64_t limit) {
        json_t *ev = json_pack("{s:s, s:I, s:I, s:s, s:I}", "route", rq->route, "uid", (json_int_t)rq->peer.uid, "pid",
                               (json_int_t)rq->peer.pid, "budget", what, "limit", (json_int_t)limit);
        alert_raise("scan_budget", ev);
        json_decref(ev);
}

static void scan_hit_alert(request *rq, const struct scan_job *j) {
        json_t *names = json_array();
        json_t *ev;

        for (size_t i = 0; i < j->n_seen && names; i++)
                json_array_append_new(names, json_string(j->seen[i].token ? "token" : j->seen[i].name));
        ev = json_pack("{s:s, s:I, s:I, s:o*, s:I, s:I}", "route", rq->route, "uid", (json_int_t)rq->peer.uid, "pid",
                       (json_int_t)rq->peer.pid, "names", names, "sightings", (json_int_t)j->total, "bytes",
                       (json_int_t)j->bytes);
        if (ev && rq->client[0])
                json_object_set_new(ev, "client", json_string(rq->client));
        alert_raise("scan_hit", ev);
        json_decref(ev);
}

int scan_start(request *rq) {
        bool redact = strcmp(rq->url, "/v1/redact") == 0;
        const char *client = NULL;
        struct scan_job *j;
        uint64_t fin;

        if (strcmp(rq->method, "POST") != 0)
                return reply_error(rq, 405, "method_not_allowed", "use POST");
        if (!rq->admin_socket) {
                if (!cb_policy_scan_grant(rq->policy, &rq->peer, &client))
                        return reply_error(rq, 403, "forbidden", "no grant lets uid %u (%s) scan",
                                           (unsigned)rq->peer.uid, rq->peer.exe_path);
                snprintf(rq->client, sizeof(rq->client), "%s", client);
        }
        j = calloc(1, sizeof(*j));
        if (!j)
                return reply_error(rq, 500, "internal", "out of memory");
        j->redact = redact;
        if (!rq->admin_socket) {
                if (!jobs_take(rq->peer.uid)) {
                        free(j);
                        return reply_error(rq, 429, "rate_limited", "uid %u already has %d scan/redact requests "
                                           "in progress", (unsigned)rq->peer.uid, JOBS_PER_UID);
                }
                j->uid = rq->peer.uid;
                j->counted = true;
                uint32_t max_req;
                cb_policy_scan_budget(rq->policy, &max_req, &j->budget_bytes);
                if (!budget_charge(j->uid, 1, 0, max_req, j->budget_bytes)) {
                        scan_budget_alert(rq, "requests", max_req);
                        job_free(j);
                        return reply_error(rq, 429, "scan_budget", "uid %u used its scan budget of %" PRIu32
                                           " requests per minute (policy scan_budget)", (unsigned)rq->peer.uid,
                                           max_req);
                }
        }
        if (redact && (header_u64(rq, "X-Credbroker-Skip", CB_REDACT_BODY_MAX, &j->skip) < 0 ||
                       header_u64(rq, "X-Credbroker-Final", 1, &fin) < 0)) {
                job_free(j);
                return reply_error(rq, 400, "bad_request", "X-Credbroker-Skip must be 0..%d and X-Credbroker-Final "
                                   "0 or 1", CB_REDACT_BODY_MAX);
        }
        j->final = redact ? fin == 1 : true;
        if (redact) {
                /* The output is about the input's size: one allocation. */
                const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Length");
                unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
                if (want > 0 && want <= CB_REDACT_BODY_MAX) {
                        j->out_cap = (size_t)want + 4096;
                        if (j->out_cap > OUT_PREALLOC)
                                j->out_cap = OUT_PREALLOC; /* grows as the body arrives */
                        j->out = malloc(j->out_cap);
                        if (!j->out)
                                j->out_cap = 0;
                }
        }
        j->lv = live_get();
        if (!j->lv) {
                job_free(j);
                return reply_error(rq, 503, "unavailable", "%s", cb_error_last());
        }
        if (!redact)
                j->findings = json_array();
        j->st = cb_scan_stream_new(j->lv->m, on_hit, redact ? on_out : NULL, j);
        if (!j->st || (!redact && !j->findings)) {
                job_free(j);
                return reply_error(rq, 500, "internal", "out of memory");
        }
        cb_scan_stream_skip(j->st, j->skip);
        {
                const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Length");
                unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
                if (n > 0 && n <= CB_SCAN_BODY_MAX) /* MHD framed the body by it: a hint, not trusted further */
                        cb_scan_stream_size_hint(j->st, n);
        }
        rq->scan = j;
        return MHD_YES;
}

int scan_feed(request *rq, const char *data, size_t *size) {
        struct scan_job *j = rq->scan;
        size_t n = *size;

        *size = 0;
        if (j->too_large || j->error)
                return MHD_YES; /* the rest is read and dropped; the answer says why */
        if (j->over_budget)
                return MHD_YES;
        if (j->bytes + n > (j->redact ? CB_REDACT_BODY_MAX : CB_SCAN_BODY_MAX)) {
                j->too_large = true;
                return MHD_YES;
        }
        if (j->counted && !budget_charge(j->uid, 0, n, UINT64_MAX, j->budget_bytes)) {
                j->over_budget = true; /* nothing more is scanned; what was is answered for */
                return MHD_YES;
        }
        j->bytes += n;
        j->error = cb_scan_stream_feed(j->st, data, n);
        return MHD_YES;
}

static void free_out(void *cls) {
        struct scan_job *j = cls;

        sodium_memzero(j->out, j->out_cap);
        free(j->out);
        free(j);
}

/* The redacted text as the answer; the buffer goes to MHD (wiped when sent). */
static int reply_redacted(request *rq, struct scan_job *j, uint64_t consumed, uint64_t skip) {
        struct MHD_Response *resp;
        char num[32], names[4096];
        size_t o = 0;

        if (audit_write(rq, 200, "allow", NULL) < 0)
                return reply_error(rq, 503, "unavailable", "the audit log cannot be written");
        names[0] = 0;
        for (size_t i = 0; i < j->n_seen; i++) {
                const char *nm = j->seen[i].name[0] ? j->seen[i].name : "token";
                bool dup = false;
                for (size_t k = 0; k < i && !dup; k++)
                        dup = strcmp(j->seen[k].name[0] ? j->seen[k].name : "token", nm) == 0;
                if (!dup && o + strlen(nm) + 2 < sizeof(names))
                        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", o ? "," : "", nm);
        }
        /* Hand the buffer over: a holder struct owns it from here. */
        struct scan_job *hold = calloc(1, sizeof(*hold));
        if (!hold)
                return MHD_NO;
        hold->out = j->out ? j->out : malloc(1);
        hold->out_cap = j->out ? j->out_cap : 1;
        size_t len = j->out_len;
        j->out = NULL;
        j->out_len = j->out_cap = 0;
        if (!hold->out) {
                free(hold);
                return MHD_NO;
        }
        resp = MHD_create_response_from_buffer_with_free_callback_cls(len, hold->out, free_out, hold);
        if (!resp) {
                free_out(hold);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        snprintf(num, sizeof(num), "%" PRIu64, consumed);
        MHD_add_response_header(resp, "X-Credbroker-Consumed", num);
        snprintf(num, sizeof(num), "%" PRIu64, skip);
        MHD_add_response_header(resp, "X-Credbroker-Skip", num);
        MHD_add_response_header(resp, "X-Credbroker-Redacted", names);
        return reply_response(rq, 200, resp); /* once its record is written */
}

int scan_finish(request *rq) {
        struct scan_job *j = rq->scan;
        uint64_t consumed = j->bytes, skip = 0;
        int r = j->error, ret;

        if (!j->too_large && r == 0)
                r = j->redact && !j->final ? cb_scan_stream_cut(j->st, &consumed, &skip) : cb_scan_stream_finish(j->st);
        else if (j->too_large && r == 0)
                r = cb_scan_stream_finish(j->st); /* sight the tail of what was read */
        /* The leak response comes first, whatever the reply: a sighting in
         * an oversized or failed request is still a sighting.  Only a
         * request that sighted something takes a lock here (the leak
         * responses'). */
        int rr = leak_respond(rq, j->seen, j->n_seen);
        /* Every sighting by a tools.sock caller is an alert, whatever the
         * leak response's cooldown: probing a secret by guesses shows. */
        if (j->counted && j->n_seen)
                scan_hit_alert(rq, j);
        if (j->over_budget) {
                uint32_t max_req;
                uint64_t max_bytes;
                cb_policy_scan_budget(rq->policy, &max_req, &max_bytes);
                scan_budget_alert(rq, "bytes", max_bytes);
                ret = reply_error(rq, 429, "scan_budget", "uid %u used its scan budget of %" PRIu64 " bytes per "
                                  "minute (policy scan_budget): the body was not scanned past it",
                                  (unsigned)rq->peer.uid, max_bytes);
        } else if (j->too_large)
                ret = reply_error(rq, 413, "payload_too_large", "body larger than %" PRIu64 " bytes%s",
                                  j->redact ? (uint64_t)CB_REDACT_BODY_MAX : CB_SCAN_BODY_MAX,
                                  j->redact ? " (one redact round)" : "");
        else if (r == -EFBIG || r == -E2BIG)
                ret = reply_error(rq, 413, "payload_too_large",
                                  "the redacted output would be more than twice the input (+%d bytes): markers "
                                  "replace many short sightings; send smaller rounds or use /v1/scan",
                                  OUT_SLACK);
        else if (r < 0)
                ret = reply_error(rq, 500, "internal", "scan failed: %s", strerror(-r));
        else if (rr < 0)
                ret = reply_error(rq, 503, "unavailable", "the audit log cannot be written");
        else if (j->redact)
                ret = reply_redacted(rq, j, consumed, skip);
        else
                ret = reply_json(rq, 200,
                                 json_pack("{s:O, s:I, s:b, s:I}", "findings", j->findings, "total",
                                           (json_int_t)j->total, "truncated", j->total > CB_SCAN_FINDINGS_MAX,
                                           "bytes", (json_int_t)j->bytes),
                                 false);
        return ret == MHD_YES ? MHD_YES : MHD_NO;
}
