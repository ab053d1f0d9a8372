# SPDX-License-Identifier: Apache-2.0
"""N randomly framed requests (seeded, reproducible) against the broker.

Each request is drawn from the framing pieces the cases use -- Content-Length
and Transfer-Encoding spellings, chunk sizes, extensions and trailers, bare
LF, obs-fold, pipelining, truncation, raw bytes, split writes -- and sent by
one of several attacker processes (real uid) to tools.sock or the TCP
listener.  Meanwhile the victim uid keeps sending ordinary requests on the
same upstreams and checks each answer is its own.  Afterwards: the daemon is
alive and serving, the upstreams only ever parsed requests under the sealed
prefix with a sealed method and exactly one credential, no token and no
victim request went astray.  Seed: $CB_ADV_SEED (printed).  The sanitizer
check of the daemon's output is run.sh's.
"""
import os, random, sys, threading, time

from harness import Agent, heads, parse_error
A = sys.modules["__main__"]  # adversary.py: the cases' framings, SEC

EXTRA = [b'X-A: 1', b'Connection: close', b'Connection: keep-alive', b'Expect: 100-continue', b'Cookie: a=b',
         b'Content-Type: application/x-www-form-urlencoded', b'Upgrade: h2c', b'Connection: Upgrade, HTTP2-Settings',
         b'TE: trailers', b'Trailer: X-T', b'X-HTTP-Method-Override: DELETE', b'Range: bytes=0-1',
         b'Proxy-Connection: keep-alive', b'Keep-Alive: timeout=1', b'Host: evil.test', b'X-Forwarded-For: 1.1.1.1']


def gen(rng, i, tok):
    up = rng.choice(('nginx', 'node', 'node'))
    s = A.SEC[up][0]
    method = rng.choice((b'GET', b'POST', b'POST', b'POST', b'PUT', b'DELETE', b'HEAD', b'OPTIONS', b'PATCH'))
    path = b'/ok/r%d' % i
    if rng.random() < 0.05:
        path += rng.choice((b'/\xc0\xae', b'?a=1+2', b'/../../admin', b'/%2e%2e/admin', b'?x=\x00', b'/ a'))
    ver = rng.choice((b'HTTP/1.1',) * 8 + (b'HTTP/1.0', b'HTTP/1.2', b'HTTP/0.9', b'http/1.1'))
    hs = [b'Host: x']
    if rng.random() < 0.95:
        hs.append(b'Authorization: Bearer ' + tok[s])
    for _ in range(rng.randrange(3)):
        hs.append(rng.choice(EXTRA))
    body = os.urandom(rng.choice((0, 1, 5, 17, 100, 1000, 4096, 20000, 70000))) if rng.random() < 0.8 else b''
    enc = body
    kind = rng.randrange(10)
    if kind == 0:
        pass
    elif kind in (1, 2):
        hs.append(b'Content-Length: %d' % (len(body) + rng.choice((0, 0, 0, -1, 1, 5, -5))))
    elif kind == 3:
        hs.append(rng.choice(A.CL_VARIANTS)[1].rstrip(b'\r\n'))
    elif kind in (4, 5, 6):
        te = rng.choice(A.TE_VARIANTS)[1] if kind == 4 else b'Transfer-Encoding: chunked\r\n'
        hs.append(te.rstrip(b'\r\n'))
        if rng.random() < 0.3:
            hs.append(b'Content-Length: %d' % rng.choice((0, 5, len(body))))
        enc = b''
        pos = 0
        while pos < len(body):
            n = rng.randrange(1, 9000)
            ext = rng.choice((b'', b'', b';a=b', b';' + b'x' * rng.randrange(100)))
            size = b'%x' % min(n, len(body) - pos)
            if rng.random() < 0.05:
                size = rng.choice((b'0' * 30 + size, size.upper(), b'-' + size, b'0x' + size, size + b' ', b'1' * 20))
            enc += size + ext + b'\r\n' + body[pos:pos + n] + b'\r\n'
            pos += n
        if rng.random() > 0.05:
            enc += b'0\r\n' + (b'X-T: 1\r\n' if rng.random() < 0.2 else b'') + b'\r\n'
    elif kind == 7:
        hs.append(rng.choice((b'Transfer-Encoding:\r\n chunked', b'Content-Length:\r\n 5', b'Content-Length : 5',
                              b'Transfer-Encoding : chunked', b'X-A\x00: 1', b'\x00', b'Content-Length: 5\x00')))
    elif kind == 8:
        hs.append(b'Content-Length: 0')
        hs.append(b'Transfer-Encoding: chunked')
        enc = b'%x\r\n' % len(body) + body + b'\r\n0\r\n\r\n'
    else:
        enc = body[:rng.randrange(len(body) + 1)]
        hs.append(b'Content-Length: %d' % len(body))
    head = method + b' /v1/proxy/' + s.encode() + path + b' ' + ver + b'\r\n' + b'\r\n'.join(hs) + b'\r\n\r\n'
    data = head + enc
    if rng.random() < 0.05:
        data = data.replace(b'\r\n', b'\n')
    if rng.random() < 0.1:
        data += b'GET /v1/proxy/' + s.encode() + b'/ok/r%dp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' % i + \
            tok[s] + b'\r\n\r\n'
    if rng.random() < 0.02:
        data = data[:rng.randrange(len(data))]
    pieces = [data]
    if rng.random() < 0.3:
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 6)))
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)]) if b > a]
    return dict(pieces=pieces, via='tcp' if rng.random() < 0.2 else 'unix', shut=rng.random() < 0.7)


def main(H, conf, req, n):
    n = n or int(os.environ.get('CB_ADV_RANDOM') or (10000 if conf['asan'] else 2000))
    seed = int(os.environ.get('CB_ADV_SEED') or random.SystemRandom().randrange(1 << 31))
    print('# %d randomly framed requests, seed %d (CB_ADV_SEED=%d to replay)' % (n, seed, seed), flush=True)
    for up in ('nginx', 'node'):
        H.mint('attacker', A.SEC[up][0])
        H.mint('victim', A.SEC[up][1])
    rng = random.Random(seed)
    reqs = [gen(rng, i, H.tok) for i in range(n)]
    workers = [H.agents['attacker']] + [Agent(conf, conf['uids']['attacker']) for _ in range(5)]
    m = H.logs.mark()
    t0 = time.time()
    stats = {}
    lock = threading.Lock()
    it = iter(reqs)
    stop = threading.Event()
    vic_bad = []
    vic_n = [0]

    def work(ag):
        while True:
            with lock:
                r = next(it, None)
            if r is None:
                return
            out = ag.xchg(r['pieces'], via=r['via'], shut=r['shut'], timeout=1.5, want=2)
            with lock:
                k = out['statuses'][0] if out['statuses'] else ('closed' if out.get('eof') else 'timeout')
                stats[k] = stats.get(k, 0) + 1

    def victim():
        k = 0
        while not stop.is_set():
            up = ('nginx', 'node')[k % 2]
            vt = '/ok/victim-rand-%d' % k
            vr = H.agents['victim'].xchg(req(up, b'GET', vt.encode(), secret=A.SEC[up][1]), timeout=5)
            if vr['statuses'][-1:] != [200] or vt.encode() not in b''.join(vr['bodies']):
                vic_bad.append('%s: %s %s' % (vt, vr['statuses'], H.show(b''.join(vr['bodies']), 200)))
            k += 1
            vic_n[0] = k
            stop.wait(0.1)
    ts = [threading.Thread(target=work, args=(a,)) for a in workers]
    vt = threading.Thread(target=victim)
    for t in ts + [vt]:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    vt.join()
    dt = time.time() - t0
    print('# sent in %.0f s; answers: %s' % (dt, ', '.join('%s x%d' % kv for kv in sorted(stats.items(),
                                                                                        key=lambda x: str(x[0])))))
    time.sleep(0.3)
    seen = H.logs.since(m)
    why = []
    if not H.daemon_alive():
        why.append('THE DAEMON DIED')
    errs, bad, nrec = [], [], 0
    for up in ('nginx', 'node'):
        for r in seen[up][0]:
            if r.get('aborted'):            # the sender broke off inside a request: none was made
                continue
            nrec += 1
            if parse_error(r):
                errs.append('%s: %s' % (up, H.show(str(r).encode(), 200)))
                continue
            t = r.get('target', '')
            sec = A.SEC[up][1] if t.startswith('/ok/victim-') else A.SEC[up][0]
            e = H.check_record(r, sec)
            if not t.startswith('/ok/') or '/..' in t or r.get('method') not in ('GET', 'POST'):
                e.append('not entitled: %s %s' % (r.get('method'), H.show(t, 100)))
            if e:
                bad.append('%s %s: %s' % (up, H.show(t, 100), '; '.join(e)))
        for c, raw in seen[up][1].items():
            hd = heads(raw)                 # in a body, a token is the tool's own data
            i = hd.find(b'cbt_')
            if i >= 0:
                bad.append('%s: a token in a request head (connection %s): ...%s' % (
                    up, c, H.show(hd[max(0, i - 300):i + 60], 900)))
    print('# upstreams parsed %d requests; victim sent %d' % (nrec, vic_n[0]))
    H.report('random framing: the upstreams parsed only entitled requests, one credential each', not bad,
             '%d bad: %s' % (len(bad), ' | '.join(bad[:10])))
    H.report('random framing: no upstream parser error (no desynchronised connection)', not errs,
             '%d errors: %s' % (len(errs), ' | '.join(errs[:10])))
    H.report('random framing: every victim request got its own answer (%d)' % vic_n[0], not vic_bad and vic_n[0],
             '%d bad: %s' % (len(vic_bad), ' | '.join(vic_bad[:5])))
    p = '/ok/after-random'
    r = H.agents['victim'].xchg(req('node', b'GET', p.encode(), secret=A.SEC['node'][1]), timeout=5)
    H.report('random framing: the daemon still serves afterwards', r['statuses'][-1:] == [200],
             'answered %s' % r['statuses'])
    for a in workers[1:]:
        a.close()
    for a in H.agents.values():
        a.close()
    if H.fails:
        sys.stdout.write(open(os.path.join(H.d, 'findings.txt')).read())
    return 1 if H.fails else 0
