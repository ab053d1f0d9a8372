/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation orchestration (see rotate.h for the steps and why each state in
 * between is safe) and the grace sweep.  The daemon-run hooks (the hook
 * directory, rotation and leak hooks, their threads) are in rotate_hook.c;
 * what the two share is in rotate_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "alert.h"
#include "audit.h"
#include "error.h"
#include "leak_react.h"
#include "log.h"
#include "metrics.h"
#include "rotate.h"
#include "rotate_internal.h"
#include "rotation_label.h"
#include "scan.h"

rotate_env rotate_cur;

void rotate_attach(const rotate_env *env) {
        rotate_cur = *env;
}

static pthread_mutex_t rotate_mu = PTHREAD_MUTEX_INITIALIZER;

void rotate_lock(void) {
        pthread_mutex_lock(&rotate_mu);
        cb_store_write_lock(rotate_cur.store);
}

void rotate_unlock(void) {
        cb_store_write_unlock(rotate_cur.store);
        pthread_mutex_unlock(&rotate_mu);
}

/* The earliest grace deadline known; 0 = rescan.  Atomic: rotate_changed
 * may be called without rotate_lock(). */
static uint64_t next_due;

static bool has_label(const cb_meta *m, const char *label) {
        for (size_t i = 0; m && i < m->labels.n; i++)
                if (strcmp(m->labels.v[i], label) == 0)
                        return true;
        return false;
}

/* ---- audit ---- */

int rotate_audit_event(json_t *o) {
        int r;

        if (!o)
                return -ENOMEM;
        json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
        r = audit_emit(o);
        json_decref(o);
        return r;
}

/* ---- the grace sweep ---- */

/* Disable name's previous versions whose grace ran out; lower *next to the
 * earliest deadline still ahead.  Appends disabled version numbers to
 * disabled (may be NULL). */
static int sweep_secret(const char *name, uint64_t now, json_t *disabled, uint64_t *next) {
        uint32_t due[64];
        const cb_version_info *vi;
        size_t nv, ndue = 0;
        int64_t grace = -1;
        int r;

        r = cb_store_versions(rotate_cur.store, name, &vi, &nv);
        if (r < 0)
                return r;
        for (size_t i = 0; i < nv; i++)
                if (vi[i].state == CB_VS_CURRENT)
                        grace = cb_rotation_grace(vi[i].meta, NULL);
        if (grace < 0)
                return 0; /* made current by a put: previous versions are the operator's call */
        for (size_t i = 0; i < nv; i++) {
                uint64_t deadline;

                if (vi[i].state != CB_VS_PREVIOUS)
                        continue;
                deadline = vi[i].changed + (uint64_t)grace;
                if (deadline > now) {
                        if (deadline < *next)
                                *next = deadline;
                } else if (ndue < sizeof(due) / sizeof(due[0])) {
                        due[ndue++] = vi[i].version;
                } else {
                        *next = now; /* the rest at the next tick */
                }
        }
        for (size_t i = 0; i < ndue; i++) {
                r = cb_store_set_state(rotate_cur.store, name, due[i], CB_VS_DISABLED);
                if (r < 0)
                        return r;
                if (disabled)
                        json_array_append_new(disabled, json_integer(due[i]));
                (void)rotate_audit_event(json_pack("{s:s, s:s, s:I}", "event", "grace_expired", "secret", name, "version",
                                            (json_int_t)due[i]));
        }
        return 0;
}

uint32_t rotate_leaked_by(const cb_version_info *vi, size_t nv, uint32_t v) {
        const size_t pl = strlen(CB_ROTATE_LEAKED_LABEL);

        for (size_t i = 0; i < nv; i++) {
                bool leaked = false;

                (void)cb_rotation_grace(vi[i].meta, &leaked);
                if (leaked && vi[i].version > v)
                        return vi[i].version;
                for (size_t k = 0; vi[i].meta && k < vi[i].meta->labels.n; k++) {
                        const char *l = vi[i].meta->labels.v[k];
                        char *end;
                        unsigned long long n;

                        if (strncmp(l, CB_ROTATE_LEAKED_LABEL, pl) != 0)
                                continue;
                        errno = 0;
                        n = strtoull(l + pl, &end, 10);
                        /* Unreadable: fail closed, as if everything before it leaked. */
                        if (errno || end == l + pl || *end || n >= vi[i].version || v <= n)
                                return vi[i].version;
                }
        }
        return 0;
}

static int version_check(const char *name, uint32_t version, uint64_t now);

int rotate_version_check(const char *name, uint32_t version, uint64_t now) {
        cb_store_read_lock(rotate_cur.store);
        int r = version_check(name, version, now);
        cb_store_read_unlock(rotate_cur.store);
        return r;
}

static int version_check(const char *name, uint32_t version, uint64_t now) {
        const cb_version_info *vi, *target = NULL;
        int64_t grace = -1;
        size_t nv;

        if (cb_store_versions(rotate_cur.store, name, &vi, &nv) < 0)
                return 0; /* the store's own answer follows */
        for (size_t i = 0; i < nv; i++) {
                if (vi[i].version == version)
                        target = &vi[i];
                if (vi[i].state == CB_VS_CURRENT)
                        grace = cb_rotation_grace(vi[i].meta, NULL);
        }
        if (!target || target->state != CB_VS_PREVIOUS)
                return 0; /* current is served; the rest the store refuses */
        if (grace >= 0 && target->changed + (uint64_t)grace <= now)
                return cb_error_set(-EPERM, "version %" PRIu32 " of '%s' is past its grace", version, name);
        if (rotate_leaked_by(vi, nv, version))
                return cb_error_set(-EPERM, "version %" PRIu32 " of '%s' leaked", version, name);
        return 0;
}

void rotate_changed(void) {
        __atomic_store_n(&next_due, 0, __ATOMIC_RELAXED);
}

static void sweep(uint64_t now);

void rotate_sweep(uint64_t now) {
        if (__atomic_load_n(&next_due, __ATOMIC_RELAXED) > now)
                return;
        rotate_lock();
        sweep(now);
        rotate_unlock();
}

static void sweep(uint64_t now) {
        const char **names = NULL;
        char **copy = NULL;
        uint64_t next = UINT64_MAX;
        size_t n = 0;

        /* Writes invalidate the store's name array: work on a copy. */
        if (cb_store_names(rotate_cur.store, &names, &n) < 0 || !(copy = calloc(n + 1, sizeof(*copy)))) {
                free(names);
                __atomic_store_n(&next_due, now + 5, __ATOMIC_RELAXED);
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (!(copy[i] = strdup(names[i])))
                        next = now + 5;
        free(names);
        for (size_t i = 0; i < n; i++) {
                if (copy[i] && sweep_secret(copy[i], now, NULL, &next) < 0) {
                        cb_log(CB_LOG_WARNING, "grace sweep: '%s': %s (retrying in 5 s)", copy[i],
                                cb_error_last());
                        if (now + 5 < next)
                                next = now + 5;
                }
                free(copy[i]);
        }
        free(copy);
        __atomic_store_n(&next_due, next, __ATOMIC_RELAXED);
}

/* A leaked rotation of name failed: its leaked version old (0: the current
 * one) stays marked compromised, so no token is issued for it until a
 * rotation succeeds, and an alert says so.  Under rotate_lock(). */
void rotate_leaked_failed(const char *name, uint32_t old, const char *source, const char *why) {
        json_t *ev;

        scanner_mark_compromised(name, old);
        ev = json_pack("{s:s, s:s, s:s, s:b}", "secret", name, "source", source, "message", why, "compromised",
                       scanner_is_compromised(name));
        if (ev && old)
                json_object_set_new(ev, "version", json_integer((json_int_t)old));
        alert_raise("rotation_failed", ev);
        if (ev) {
                json_t *rec = json_deep_copy(ev);
                if (rec) {
                        json_object_set_new(rec, "event", json_string("rotation_failed"));
                        (void)rotate_audit_event(rec);
                }
        }
        json_decref(ev);
}

/* ---- rotation ---- */

/* Record in m (the new version's sealed metadata) that every version up to
 * old leaked: the label CB_ROTATE_LEAKED_LABEL "N" replaces an earlier one
 * (versions only grow).  Later rotations copy it forward with the rest of
 * the metadata, so `version enable` can refuse those versions for good. */
static int mark_leaked_through(cb_meta *m, uint32_t old) {
        char label[64];
        size_t k = 0;
        int r;

        for (size_t i = 0; i < m->labels.n; i++) {
                if (strncmp(m->labels.v[i], CB_ROTATE_LEAKED_LABEL, strlen(CB_ROTATE_LEAKED_LABEL)) == 0)
                        free(m->labels.v[i]);
                else
                        m->labels.v[k++] = m->labels.v[i];
        }
        m->labels.n = k;
        snprintf(label, sizeof(label), CB_ROTATE_LEAKED_LABEL "%" PRIu32, old);
        r = cb_strv_push(&m->labels, label, CB_META_MAX_LABELS);
        return r < 0 ? cb_error_set(r, "cannot record the leak: the secret already has %d labels", CB_META_MAX_LABELS)
                     : 0;
}

/* Does value[0..len) equal a version of name that is not destroyed?  Its
 * number in *ret_version (0: none).  0 or -errno (message set).  The
 * comparisons are constant-time per version (sodium_memcmp). */
static int value_reused(const char *name, const void *value, size_t len, uint32_t *ret_version) {
        const cb_version_info *vi;
        uint32_t *vers = NULL;
        size_t nv, n = 0;
        int r;

        *ret_version = 0;
        r = cb_store_versions(rotate_cur.store, name, &vi, &nv);
        if (r < 0)
                return cb_error_set(r, "no secret named '%s'", name);
        /* Copied: the store's array is not ours to hold across calls. */
        vers = calloc(nv ? nv : 1, sizeof(*vers));
        if (!vers)
                return cb_error_set(-ENOMEM, "out of memory");
        for (size_t i = 0; i < nv; i++)
                if (vi[i].state != CB_VS_DESTROYED)
                        vers[n++] = vi[i].version;
        r = 0;
        for (size_t i = 0; i < n && !*ret_version; i++) {
                cb_secbuf *old = NULL;
                /* Leaked versions too: the store would refuse them anyway, this says which. */
                int g = cb_store_get_ex(rotate_cur.store, name, vers[i], true, CB_STORE_LEAKED_OK, &old, NULL, NULL);

                if (g == -EKEYREVOKED || g == -ENOENT)
                        continue; /* destroyed (or gone) meanwhile: nothing to compare */
                if (g < 0) {
                        r = cb_error_set(g, "cannot read version %" PRIu32 " to compare: %s", vers[i],
                                         cb_error_last());
                        break;
                }
                if (cb_secbuf_len(old) == len && sodium_memcmp(cb_secbuf_data(old), value, len) == 0)
                        *ret_version = vers[i];
                cb_secbuf_free(old);
        }
        free(vers);
        return r;
}

/* "cbs_" + unpadded base64url of 32 random bytes (47 characters). */
static cb_secbuf *generate_value(void) {
        unsigned char raw[32];
        size_t cap = 4 + sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        cb_secbuf *v = cb_secbuf_new(cap);
        char *p;

        if (!v)
                return NULL;
        p = (char *)cb_secbuf_data(v);
        randombytes_buf(raw, sizeof(raw));
        memcpy(p, "cbs_", 4);
        sodium_bin2base64(p + 4, cap - 4, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        cb_secbuf_truncate(v, strlen(p));
        return v;
}

int rotate_secret(const char *name, const void *value, size_t len, uint32_t grace, bool leaked, const char *source,
                  json_t **ret) {
        return rotate_run(ROTATE_FULL, name, value, len, grace, leaked, 0, source, ret);
}

int rotate_run(enum rotate_phase phase, const char *name, const void *value, size_t len, uint32_t grace, bool leaked,
               uint32_t promote, const char *source, json_t **ret) {
        const cb_version_info *vi;
        const cb_meta *cur_meta = NULL;
        cb_secbuf *gen = NULL;
        cb_meta *m = NULL;
        json_t *superseded = json_array(), *disabled = json_array(), *summary = NULL;
        uint32_t pending[64], old = 0, version = 0;
        size_t nv, npending = 0, revoked = 0, cut = 0;
        const char *step = "start";
        uint64_t next = UINT64_MAX;
        int r;

        if (!superseded || !disabled) {
                r = cb_error_set(-ENOMEM, "out of memory");
                goto out;
        }
        if (leaked)
                grace = 0;
        if (grace > CB_ROTATE_GRACE_MAX) {
                r = cb_error_set(-EINVAL, "grace %" PRIu32 " s is over the limit of %u s", grace, CB_ROTATE_GRACE_MAX);
                goto out;
        }
        r = cb_store_versions(rotate_cur.store, name, &vi, &nv);
        if (r < 0) {
                r = cb_error_set(-ENOENT, "no secret named '%s' (rotate replaces a stored secret: put it first)", name);
                goto out;
        }
        for (size_t i = 0; i < nv; i++) {
                if (vi[i].state == CB_VS_CURRENT) {
                        old = vi[i].version;
                        cur_meta = vi[i].meta;
                } else if (vi[i].state == CB_VS_PENDING && vi[i].version != promote &&
                           npending < sizeof(pending) / sizeof(pending[0])) {
                        pending[npending++] = vi[i].version;
                }
        }
        if (!old) {
                r = cb_error_set(CB_E_INTEGRITY, "secret '%s' has no current version", name);
                goto out;
        }
        if (phase == ROTATE_PROMOTE) {
                const cb_version_info *p = NULL;
                int64_t g;

                for (size_t i = 0; i < nv; i++)
                        if (vi[i].version == promote)
                                p = &vi[i];
                if (p && p->state == CB_VS_CURRENT) {
                        /* Promoted already (a re-run after a lost answer). */
                        if (ret)
                                *ret = json_pack("{s:s, s:I, s:b}", "name", name, "version", (json_int_t)promote,
                                                 "already", 1);
                        r = 0;
                        goto out;
                }
                if (!p || p->state != CB_VS_PENDING) {
                        r = cb_error_set(p ? -EINVAL : -ENOENT, "version %" PRIu32 " of '%s' is %s, not pending: "
                                         "stage a new one", promote, name,
                                         p ? cb_version_state_name(p->state) : "absent");
                        goto out;
                }
                /* Staged with its grace sealed in: that is what it promises. */
                g = cb_rotation_grace(p->meta, &leaked);
                grace = g >= 0 ? (uint32_t)g : CB_ROTATE_GRACE_DEFAULT;
        } else if (!value) {
                if (!has_label(cur_meta, CB_ROTATE_GENERATE_LABEL)) {
                        r = cb_error_set(-EPERM, "'%s' does not allow generated values: only a secret whose current "
                                         "version carries the sealed label %s (put --label %s) may be generated "
                                         "by the broker", name, CB_ROTATE_GENERATE_LABEL, CB_ROTATE_GENERATE_LABEL);
                        goto out;
                }
                gen = generate_value();
                if (!gen) {
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                value = cb_secbuf_data(gen);
                len = cb_secbuf_len(gen);
        }
        if (phase != ROTATE_PROMOTE && (r = cb_rotation_meta(cur_meta, grace, leaked, &m)) < 0)
                goto out;
        if (phase != ROTATE_PROMOTE && leaked && (r = mark_leaked_through(m, old)) < 0)
                goto out;
        /* Containment first: if any later step fails, the old version is
         * marked leaked in the store (never served again, its value never
         * stored again) and the tokens are gone. */
        if (leaked) {
                scanner_mark_compromised(name, old);
                revoked = cb_tokens_revoke_secret(rotate_cur.tokens, name);
                cut = leak_cut_secret(name, "rotated after a leak");
        }
        /* A rotation that cannot be audited does not start, unless it answers
         * a leak: containment beats the record (stderr says so). */
        r = rotate_audit_event(json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:s}", "event", "rotate.begin", "source",
                                  source, "secret", name, "current", (json_int_t)old, "grace", (json_int_t)grace,
                                  "leaked", leaked, "revoked", (json_int_t)revoked, "phase",
                                  phase == ROTATE_STAGE ? "stage" : phase == ROTATE_PROMOTE ? "promote" : "full"));
        if (r < 0 && !leaked) {
                r = cb_error_set(-EIO, "the audit log cannot be written: rotation of '%s' not started", name);
                goto out;
        }
        if (r < 0)
                cb_log(CB_LOG_WARNING, "audit log cannot be written; rotating leaked secret '%s' anyway",
                        name);
        if (phase != ROTATE_PROMOTE && !gen) {
                uint32_t same = 0;

                step = "comparing the new value with every version";
                r = value_reused(name, value, len, &same);
                if (r == 0 && same)
                        r = cb_error_set(-EEXIST, "the new value equals version %" PRIu32 "'s (a rotation needs a "
                                         "value the secret never had)", same);
                if (r < 0)
                        goto fail;
        }
        step = "superseding leftover pending versions";
        for (size_t i = 0; i < npending; i++) {
                r = cb_store_set_state(rotate_cur.store, name, pending[i], CB_VS_DISABLED);
                if (r < 0)
                        goto fail;
                json_array_append_new(superseded, json_integer(pending[i]));
        }
        step = "storing the new version as pending";
        if (phase == ROTATE_PROMOTE)
                version = promote;
        else if ((r = cb_store_put(rotate_cur.store, name, value, len, m, CB_VS_PENDING, &version)) < 0)
                goto fail;
        if (phase == ROTATE_STAGE) {
                summary = json_pack("{s:s, s:I, s:b, s:I, s:b, s:O}", "name", name, "version", (json_int_t)version,
                                    "staged", 1, "grace", (json_int_t)grace, "leaked", leaked, "superseded",
                                    superseded);
                (void)rotate_audit_event(json_pack("{s:s, s:s, s:s, s:I}", "event", "rotate.staged", "source", source,
                                            "secret", name, "version", (json_int_t)version));
                if (!summary) {
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                if (ret) {
                        *ret = summary;
                        summary = NULL;
                }
                r = 0;
                goto out;
        }
        step = "making the new version current";
        r = cb_store_set_state(rotate_cur.store, name, version, CB_VS_CURRENT);
        if (r < 0)
                goto fail;
        step = "disabling previous versions past their grace";
        r = sweep_secret(name, (uint64_t)time(NULL), disabled, &next);
        if (r < 0)
                goto fail;
        rotate_changed(); /* deadlines changed: rescan at the next tick */
        summary = json_pack("{s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:O, s:O, s:s}", "name", name, "version",
                            (json_int_t)version, "previous", (json_int_t)old, "grace", (json_int_t)grace, "leaked",
                            leaked, "revoked", (json_int_t)revoked, "proxy_cut", (json_int_t)cut, "superseded",
                            superseded, "disabled", disabled, "source", source);
        if (!summary) {
                r = cb_error_set(-ENOMEM, "out of memory");
                goto out;
        }
        if (leaked)
                json_object_set_new(summary, "leak_hook", json_boolean(rotate_leak_hook_start(name, summary)));
        {
                json_t *rec = json_deep_copy(summary);
                json_object_set_new(rec, "event", json_string("rotate"));
                json_object_del(rec, "name");
                json_object_set_new(rec, "secret", json_string(name));
                (void)rotate_audit_event(rec);
        }
        metrics_rotation(name, leaked ? "leaked" : "planned");
        if (ret) {
                *ret = summary;
                summary = NULL;
        }
        r = 0;
        goto out;
fail:
        rotate_changed();
        metrics_rotation(name, "failed");
        r = cb_error_set(r, "rotation of '%s' stopped while %s: %s; 'credbroker versions %s' shows the state, which "
                         "is consistent; run the rotation again", name, step, cb_error_last(), name);
        (void)rotate_audit_event(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "rotate", "source", source, "secret", name,
                                    "result", "failed", "message", cb_error_last()));
out:
        if (r < 0 && leaked && old) {
                /* The tokens are gone, but the leaked value may still be current:
                 * no new token for it until a rotation succeeds. */
                rotate_leaked_failed(name, old, source, cb_error_last());
                if (scanner_is_compromised(name))
                        r = cb_error_set(r, "%s; '%s' is marked compromised: no token is issued until a rotation "
                                         "succeeds", cb_error_last(), name);
        }
        cb_secbuf_free(gen);
        cb_meta_free(m);
        json_decref(superseded);
        json_decref(disabled);
        json_decref(summary);
        return r;
}
