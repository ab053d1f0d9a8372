#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
#   PERF_DIR=/tmp/p bash tests/bench/proxy.sh
#   perf script --no-inline -i /tmp/p/credbroker.perf -F tid,period,ip,sym,dso > /tmp/p/credbroker.script
#   python3 tests/bench/perf-groups.py /tmp/p/credbroker.script $(awk '/requests in/ {print $1}' /tmp/p/credbroker.wrk)
#
# Microseconds of CPU per request by component: the sampled CPU time
# (cpu-clock periods, all threads of the process) over the requests wrk
# made in that run.
"""groups.py SCRIPT REQUESTS: perf script (-F tid,period,ip,sym,dso, --no-inline) -> us per request by
component; each sample goes to the innermost frame (leaf first) found in GROUPS, unless a libmicrohttpd
or libcurl frame comes first (the library's own work under our callback); else to the leaf's library
(kernel: by system call, named by the user-space function that entered it)."""
import sys, re, collections
path, nreq = sys.argv[1], int(sys.argv[2])
G = {}
def grp(name, *fns):
    for f in fns: G[f] = name
grp('ours: token check (cb_tokens_check, codec CRC, leak gate)', 'cb_tokens_check', 'cb_token_check', 'cb_tokens_count_checked', 'leak_token_gate', 'leak_canary_note', 'bearer')
grp('ours: secret fetch (cb_store_get: freshness stat + decrypt)', 'cb_store_get')
grp('ours: policy (grant, client)', 'cb_policy_client_grant', 'cb_policy_client_may_select', 'cb_policy_acquire', 'cb_policy_release', 'policy_snapshot_acquire')
grp('ours: request hygiene (cb_preq_*, headers, dest)', 'cb_preq_decide', 'cb_preq_header_class', 'cb_header_bad', 'parse_hostport', 'cb_dest_parse', 'cb_name_valid')
grp('ours: injection + upstream header list', 'cb_inject_parse', 'curl_slist_append')
grp('ours: red_cache (the value\'s matcher)', 'red_cache_get')
grp('ours: decision record + request id (jansson, metrics)', 'json_pack', 'json_delete', 'metrics_request_id', 'json_object_set_new')
grp('ours: completion (audit_done, metrics)', 'audit_done', 'metrics_proxy_done')
grp('ours: response header filter + redaction (on_header)', 'on_header')
grp('ours: response body redaction + buffer (on_write)', 'on_write', 'redact_push', 'push')
grp('ours: answer to the tool (proxy_continue, reader, held_free)', 'proxy_continue', 'held_free', 'reader', 'reader_free')
grp('ours: job start/teardown (proxy_start, unref, request struct)', 'proxy_start', 'proxy_job_unref', 'proxy_request_done', 'keep_target', 'proxy_release')
grp('ours: curl handle options + reset', 'proxy_job_setup', 'curl_easy_reset', 'curl_easy_setopt')
grp('ours: socket open/ownership (SSRF, on_prereq)', 'on_opensocket', 'on_prereq', 'on_closesocket', 'up_add', 'up_remove')
grp('ours: idle watch (epoll_ctl ADD)', 'idle_watch')
grp('ours: curl wipe-on-free (cb_wipe_*)', 'cb_wipe_free', 'cb_wipe_realloc', 'cb_wipe_strdup')
grp('ours: request routing/dispatch other', 'handle', 'dispatch', 'run_route', 'api_proxy', 'handle_body', 'http_route_find', 'conn_ctx_of', 'completed', 'conn_notify', 'keep_escapes')
grp('ours: loop bookkeeping (job_finish, wake, timers)', 'job_finish', 'job_start', 'job_poked', 'finish_done', 'wake_all', 'proxy_job_finished', 'proxy_job_wake_locked', 'curl_timer_run', 'loop_idle', 'proxy_pool_submit')
def lib(d):
    b = d.rsplit('/', 1)[-1]
    for k, n in (('libmicrohttpd', 'libmicrohttpd'), ('libcurl', 'libcurl'), ('libc.so', 'libc'), ('libjansson', 'jansson'),
                 ('libsodium', 'libsodium'), ('libssl', 'openssl'), ('libcrypto', 'openssl'), ('vdso', 'vdso'), ('ld-linux', 'ld.so')):
        if k in b: return n
    return 'ours: other' if ('credbrokerd' in b or 'proxy-floor' in b) else b
MALLOC = re.compile(r'malloc|calloc|realloc|free|^_int_|tcache|unlink_chunk|consolidate|sysmalloc|usable_size')
samples = []; cur = None
for line in open(path, errors='replace'):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None; continue
    if re.match(r'^\s*\d+\s+\d+\s*$', line):
        p = line.split(); cur = [int(p[1]), []]; continue
    m = re.match(r'\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$', line)
    if m and cur is not None: cur[1].append((m.group(2), m.group(3)))
if cur: samples.append(cur)
tot = sum(s[0] for s in samples); out = collections.Counter(); own = collections.Counter()
for per, fr in samples:
    if not fr: continue
    # innermost group frame, unless libmicrohttpd or libcurl code lies between it and the leaf:
    # then the library is doing its own work (sending, parsing) under our callback
    g = None
    for s, d in fr:
        if s in G and not d.startswith('[kernel'):
            g = G[s]; break
        if 'libmicrohttpd' in d or 'libcurl' in d:
            break
    if g:
        out[g] += per
        continue
    sym, d = fr[0]
    if d.startswith('[kernel'):
        kern = [s for s, dd in fr if dd.startswith('[kernel')]
        user = next((s for s, dd in fr if not dd.startswith('[kernel')), '?')
        if any('page_fault' in s for s in kern): k = 'kernel: page faults'
        elif 'do_syscall_64' not in kern: k = 'kernel: interrupts'
        else: k = 'kernel: ' + re.sub(r'^(__GI_+|__libc_|__)', '', user)
        out[k] += per
    else:
        l = lib(d)
        if l == 'libc':
            l = 'libc: malloc/free' if MALLOC.search(sym) else 'libc: mem*/str*' if re.match(r'^__(mem|str)', sym) else 'libc: other'
        out[l] += per
us = lambda v: v / 1000.0 / nreq
print(f'# {path}: {len(samples)} samples, {tot / 1e9:.2f} s CPU, {nreq} requests: {us(tot):.1f} us/request')
for k, v in sorted(out.items(), key=lambda kv: (-kv[1])): print(f'{us(v):6.2f}  {k}')
