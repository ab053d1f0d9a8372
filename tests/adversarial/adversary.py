#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The adversarial proxy suite (run by run.sh, which starts everything).

    adversary.py cases CONF          every attack below, byte for byte
    adversary.py random CONF [N]     fuzzgen.py: N randomly framed requests

A case sends exact bytes as the attacker uid (to tools.sock or the TCP
listener), then -- for the upstreams with a victim -- the victim uid sends
two ordinary requests on the same upstream (so on the broker's pooled
connection), and then checks what every upstream parsed and received:
only the requests the attacker was entitled to, each with exactly one
injected credential (its own), no token, no routing header, no parser
error at any upstream, and the victim's requests intact with the victim's
credential and answered with their own answers.
"""
import base64, json, os, re, sys, time, urllib.parse

sys.dont_write_bytecode = True            # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, head_problems, heads, parse_error  # noqa: E402

conf = json.load(open(sys.argv[2]))
H = Harness(conf)
SEC = {up: tuple(v) for up, v in conf['secrets'].items()}
PORT = conf['ports']
SMUG = b'DELETE /admin/users/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n'
PAD = b'DELETE /admin/takeover HTTP/1.1\r\nX-Pad: '
REFUSAL = set(range(400, 500)) | {501}
# Header names a server behind a gateway (CGI, WSGI, some proxies) may read
# as a framing header; the broker's own framing headers never look so.
FRAMING_RAW = re.compile(rb'(?im)^(transfer_encoding|content_length|transfer-encoding[ \t]+|content-length[ \t]+)'
                         rb'[ \t]*:.*$')
ROUTING_RAW = re.compile(rb'(?im)^(forwarded|x[-_]forwarded[-_][a-z]+|x[-_]original[-_][a-z]+|x[-_]rewrite[-_]url|'
                         rb'x[-_]envoy[-_][-_a-z]+|x[-_]real[-_]ip)[ \t]*:')
seq = iter(range(1, 1 << 30))


def ch(b, ext=b'', trailer=b''):
    return b'%x%s\r\n%s\r\n0\r\n%s\r\n' % (len(b), ext, b, trailer)


def req(up, method, path, headers=b'', body=b'', secret=None, tok=True, version=b'HTTP/1.1', host=b'x'):
    s = secret or SEC[up][0]
    a = b'Authorization: Bearer ' + H.tok[s] + b'\r\n' if tok else b''
    return (method + b' /v1/proxy/' + s.encode() + path + b' ' + version + b'\r\nHost: ' + host + b'\r\n' + a +
            headers + b'\r\n' + body)


def path_for(name):
    return '/ok/%s-%d' % (re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-'), next(seq))


def run(name, up, sent, expect, want=(), allow=(), via='unix', victim=True, nresp=1, body_len=None, shut=False,
        gap=0, wait100=False, timeout=8, must_close=True, who='attacker', secret=None, rec_check=None,
        path_only=False, need=None):
    """One case.  expect: 'pass' (answered 2xx; upstream saw exactly `want`,
    [(method, target)]), 'refuse' (4xx/501 or closed, nothing upstream but
    `allow`), or 'either' (one of the two, judged by the answer).
    path_only: compare targets without their query (the broker may drop a
    parameter).  need: answers a pass must have (default nresp)."""
    secret = secret or SEC[up][0]
    name = '%s: %s' % (up, name)
    if not H.wanted(name):
        return None
    m = H.logs.mark()
    got = H.agents[who].xchg(sent, via=via, want=nresp, shut=shut, gap=gap, wait100=wait100, timeout=timeout,
                             linger=0.3 if expect != 'pass' else 0)
    finals = [s for s in got['statuses'] if s >= 200 or s < 0]
    vic = []
    vsec = SEC[up][1]
    if victim and vsec:
        for i in range(2):
            vt = '/ok/victim-%d-%d' % (next(seq), i)
            vr = H.agents['victim'].xchg(req(up, b'GET', vt.encode(), secret=vsec), timeout=10)
            vic.append((vt, vr))
    time.sleep(0.05)
    seen = H.logs.since(m)
    why = []
    first = finals[0] if finals else None
    passed = first is not None and 200 <= first < 300
    refused = (first in REFUSAL) or (first is None and got.get('eof'))
    if expect == 'pass' and not passed:
        why.append('wanted a 2xx answer, got %s' % (first if first is not None else 'no answer'))
    elif expect == 'refuse' and not refused:
        why.append('wanted a refusal (400), got %s' % (first if first is not None else 'no answer, connection open'))
    elif expect == 'either' and not (passed or refused):
        why.append('wanted a refusal or a clean pass, got %s' % (first if first is not None else 'no answer'))
    if refused and first is not None and must_close and not got.get('eof'):
        why.append('refused with %s but the connection was left open' % first)
    if expect == 'pass' and len(finals) < (need or nresp):
        why.append('%d of %d answers' % (len(finals), need or nresp))
    # What the attacker's bytes made the upstreams do.
    key = (lambda t: (t or '').split('?')[0]) if path_only else (lambda t: t)
    att, aborted = [], []
    for u, (recs, up_b, _d) in seen.items():
        for r in recs:
            if r.get('aborted'):
                # The broker gave up inside a request (a body it found bad
                # while streaming): its head must still be one it may send.
                aborted.append(r)
                if 'target' in r and (r.get('method'), key(r['target'])) not in \
                        [(w[0], key(w[1])) for w in list(want) + list(allow)]:
                    why.append('%s got the head of a request the tool was not entitled to: %s %s' % (
                        u, r.get('method'), H.show(r['target'], 200)))
            elif parse_error(r):
                why.append('%s: parser error: %s' % (u, H.show(json.dumps(r).encode(), 300)))
            elif not (u == up and is_victim(r)):
                att.append((u, r))
        raw = b''.join(up_b.values())
        hd = heads(raw)                     # a token in a body is the tool's own business
        if b'cbt_' in hd or any(t[4:] in hd for t in H.tok.values()):
            why.append('%s: a token reached the upstream in a request head (raw stream)' % u)
        for hm in ROUTING_RAW.finditer(raw):
            why.append('%s: routing header %s reached it (raw stream)' % (u, hm.group(1).decode('latin-1')))
        for hm in FRAMING_RAW.finditer(raw):
            why.append('%s: a header that some servers read as framing reached it: %s' % (u, H.show(hm.group(0), 80)))
        why += ['%s: the broker wrote a head with %s' % (u, H.show(p, 120)) for p in head_problems(raw)]
    want = [(w[0], key(w[1])) for w in want] if passed else []
    allow = [(w[0], key(w[1])) for w in allow]
    left = [(r.get('method'), key(r.get('target'))) for u, r in att]
    for w in want:
        if w in left:
            left.remove(w)
        else:
            why.append('upstream never saw %s %s' % w)
    for g in left:
        if g not in allow:
            why.append('upstream saw a request the tool was not entitled to: %s %s' % (g[0], H.show(str(g[1]), 200)))
    for u, r in att:
        if u != up:
            why.append('the request reached %s, not %s' % (u, up))
        why += ['%s: %s' % (u, e) for e in H.check_record(r, secret)]
        if body_len is not None and 'body_len' in r and r['body_len'] != body_len:
            why.append('%s parsed a body of %d bytes, sent %d' % (u, r['body_len'], body_len))
        if rec_check:
            why += rec_check(r)
        norm = r.get('norm')                # nginx: the path it resolved (decoded, dot segments removed)
        pre = '/app' if up == 'php' else '/ok'
        if norm is not None and r.get('status') != 400 and (
                not (norm == pre or norm.startswith(pre + '/')) or '/..' in norm or '\\' in norm):
            why.append('nginx resolved the path to %s, outside the sealed prefix %s' % (H.show(norm, 100), pre))
    raw = b''.join(seen[up][1].values())
    n = raw.count(H.vals[secret])
    # A refused request may have had its head streamed before the broker
    # found its body bad (then aborted): one credential more, no request.
    slack = 1 if refused else 0
    if not len(att) + len(aborted) <= n <= len(att) + len(aborted) + slack:
        why.append('%s received the credential %d time(s) for %d request(s)' % (up, n, len(att) + len(aborted)))
    # The victim.
    if vic:
        vrecs = [r for r in seen[up][0] if is_victim(r)]
        for vt, vr in vic:
            body = b''.join(vr['bodies'])
            if not vr['statuses'] or vr['statuses'][-1] != 200 or vt.encode() not in body or vr.get('truncated'):
                why.append('victim request %s answered %s %s%s' % (vt, vr['statuses'], H.show(body, 200),
                                                                   ' (truncated)' if vr.get('truncated') else ''))
            mine = [r for r in vrecs if r.get('target') == vt]
            if len(mine) != 1 or mine[0].get('method') != 'GET':
                why.append('victim request %s parsed %d time(s) upstream' % (vt, len(mine)))
            for r in mine:
                why += ['victim: ' + e for e in H.check_record(r, vsec)]
        if raw.count(H.vals[vsec]) != len(vic):
            why.append('victim credential sent %d time(s) for %d victim request(s)' % (raw.count(H.vals[vsec]),
                                                                                        len(vic)))
    if not H.daemon_alive():
        why.append('THE DAEMON DIED')
    H.report(name, not why, '; '.join(dict.fromkeys(why)), sent, got, seen)
    resync(up)
    return passed


def is_victim(r):
    """The victim's own requests (this case's, or the last resync's, which
    nginx may log a moment after answering)."""
    t = r.get('target') or ''
    return r.get('method') == 'GET' and (t.startswith('/ok/victim-') or t.startswith('/ok/resync-'))


def resync(up):
    """Between cases: close the upstream connections, then make sure the
    broker's pool answers a request with its own answer again (a broken
    broker may hold a desynchronised answer; it must not spill into the
    next case, whose result would then be the last one's)."""
    H.drop_pool()
    vsec = SEC[up][1]
    if not vsec:
        return
    for i in range(4):
        vt = '/ok/resync-%d' % next(seq)
        r = H.agents['victim'].xchg(req(up, b'GET', vt.encode(), secret=vsec), timeout=8)
        if vt.encode() in b''.join(r['bodies']):
            return
        H.drop_pool()


# --------------------------------------------------------------------------
# The cases.

TE_VARIANTS = [  # (name, header bytes, is it plainly "chunked"? None: not a TE header as sent)
    ('te chunked', b'Transfer-Encoding: chunked\r\n', True),
    ('te trailing space', b'Transfer-Encoding: chunked \r\n', True),
    ('te trailing tab', b'Transfer-Encoding: chunked\t\r\n', True),
    ('te leading tab', b'Transfer-Encoding:\tchunked\r\n', True),
    ('te Chunked', b'Transfer-Encoding: Chunked\r\n', True),
    ('te upper', b'TRANSFER-ENCODING: CHUNKED\r\n', True),
    ('te chunked, chunked', b'Transfer-Encoding: chunked, chunked\r\n', False),
    ('te gzip, chunked', b'Transfer-Encoding: gzip, chunked\r\n', False),
    ('te identity, chunked', b'Transfer-Encoding: identity, chunked\r\n', False),
    ('te ,chunked', b'Transfer-Encoding: ,chunked\r\n', False),
    ('te chunked,', b'Transfer-Encoding: chunked,\r\n', False),
    ('te two headers', b'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', False),
    ('te gzip then chunked headers', b'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n', False),
    ('te obs-fold', b'Transfer-Encoding:\r\n chunked\r\n', False),
    ('te obs-fold after identity', b'Transfer-Encoding: identity\r\n chunked\r\n', False),
    ('te space before colon', b'Transfer-Encoding : chunked\r\n', False),
    ('te underscore', b'Transfer_Encoding: chunked\r\n', None),
    ('te vertical tab', b'Transfer-Encoding: \x0bchunked\r\n', False),
    ('te xchunked', b'Transfer-Encoding: xchunked\r\n', False),
    ('te quoted', b'Transfer-Encoding: "chunked"\r\n', False),
    ('te parameter', b'Transfer-Encoding: chunked;q=1\r\n', False),
    ('te NUL', b'Transfer-Encoding: chunked\x00\r\n', None),
    ('te bare LF', b'Transfer-Encoding: chunked\n', True),
    ('te gzip', b'Transfer-Encoding: gzip\r\n', False),
    ('te identity', b'Transfer-Encoding: identity\r\n', False),
]

CL_VARIANTS = [  # (name, header bytes, expect) with body b'hello' + 7 more bytes
    ('cl +5', b'Content-Length: +5\r\n', 'refuse'),
    ('cl -5', b'Content-Length: -5\r\n', 'refuse'),
    ('cl 005', b'Content-Length: 005\r\n', 'either'),
    ('cl 0x5', b'Content-Length: 0x5\r\n', 'refuse'),
    ('cl "5 5"', b'Content-Length: 5 5\r\n', 'refuse'),
    ('cl OWS', b'Content-Length:  5 \r\n', 'either'),
    ('cl two equal', b'Content-Length: 5\r\nContent-Length: 5\r\n', 'refuse'),
    ('cl two different', b'Content-Length: 5\r\nContent-Length: 12\r\n', 'refuse'),
    ('cl list equal', b'Content-Length: 5, 5\r\n', 'either'),
    ('cl list different', b'Content-Length: 5, 12\r\n', 'refuse'),
    ('cl 2^64+5', b'Content-Length: 18446744073709551621\r\n', 'refuse'),
    ('cl huge', b'Content-Length: 99999999999999999999999999999\r\n', 'refuse'),
    ('cl 5.0', b'Content-Length: 5.0\r\n', 'refuse'),
    ('cl empty', b'Content-Length: \r\n', 'refuse'),
    ('cl arabic digit', 'Content-Length: \u0665\r\n'.encode(), 'refuse'),
    ('cl space before colon', b'Content-Length : 5\r\n', 'either'),
    ('cl underscore', b'Content_Length: 5\r\n', 'either'),
    ('cl obs-fold', b'Content-Length:\r\n 5\r\n', 'either'),
]

CHUNK_VARIANTS = [  # (name, chunked body, expect, decoded length if passed)
    ('chunk extension', b'5;foo=bar\r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk extension quoted CRLF', b'5;foo="a\r\nb"\r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk extension 8 KiB', b'5;' + b'a' * 8192 + b'\r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk trailers', b'5\r\nhello\r\n0\r\nX-Trailer: 1\r\nAuthorization: Bearer stolen\r\n\r\n', 'either', 5),
    ('chunk trailer Transfer-Encoding', b'5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
     'either', 5),
    ('chunk size 0005', b'0005\r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk size 64 zeros', b'0' * 64 + b'5\r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk size 2^64+5', b'10000000000000005\r\nhello\r\n0\r\n\r\n', 'refuse', None),
    ('chunk size -5', b'-5\r\nhello\r\n0\r\n\r\n', 'refuse', None),
    ('chunk size 0x5', b'0x5\r\nhello\r\n0\r\n\r\n', 'refuse', None),
    ('chunk size then space', b'5 \r\nhello\r\n0\r\n\r\n', 'either', 5),
    ('chunk bare LF', b'5\nhello\n0\n\n', 'either', 5),
    ('chunk data without CRLF', b'5\r\nhelloXX0\r\n\r\n', 'refuse', None),
    ('chunk data longer than size', b'3\r\nhello\r\n0\r\n\r\n', 'refuse', None),
    ('chunk last-chunk 000', b'5\r\nhello\r\n000\r\n\r\n', 'either', 5),
]


def framing_cases(up):
    for name, te, plain in TE_VARIANTS:
        p = path_for(name)
        # With a Content-Length: always refused (RFC 9112 6.1), whatever the spelling.
        run(name + ' + CL 5 (DELETE body)', up,
            req(up, b'POST', p.encode(), b'Content-Length: 5\r\n' + te, ch(b'hello' + SMUG)),
            'either' if plain is None else 'refuse', want=[('POST', p)], body_len=5)
        p = path_for(name)
        run(name + ' alone', up, req(up, b'POST', p.encode(), te, ch(b'hello')),
            'refuse' if plain is False else 'either', want=[('POST', p)], body_len=5 if plain else None)
    # The cross-uid hijack: an unterminated prefix left on the pooled
    # connection, completed by the victim's request right after.
    p = path_for('hijack')
    run('CL+TE unterminated prefix, victim next (cross-uid hijack)', up,
        req(up, b'POST', p.encode(), b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', ch(b'hello' + PAD)),
        'refuse')
    p = path_for('hijack-te-first')
    run('TE before CL, unterminated prefix, victim next', up,
        req(up, b'POST', p.encode(), b'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', ch(b'hello' + PAD)),
        'refuse')
    for name, cl, expect in CL_VARIANTS:
        p = path_for(name)
        run(name, up, req(up, b'POST', p.encode(), cl + b'Connection: close\r\n', b'helloWORLD!!'), expect,
            want=[('POST', p)], body_len=5 if expect == 'refuse' or name in ('cl 005', 'cl OWS', 'cl list equal')
            else None)
    for name, body, expect, n in CHUNK_VARIANTS:
        p = path_for(name)
        # A bad chunk may be found after the head went upstream (bodies
        # stream): the tool's own request may have started, nothing else.
        run(name, up, req(up, b'POST', p.encode(), b'Transfer-Encoding: chunked\r\n', body), expect,
            want=[('POST', p)], allow=[('POST', p)], body_len=n)


def crash_cases(up):
    p = path_for('crash')
    run('CL 0 + chunked 5-byte chunk (the crash)', up,
        req(up, b'POST', p.encode(), b'Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', ch(b'hello')), 'refuse')
    p = path_for('crash-split')
    r = req(up, b'POST', p.encode(), b'Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', ch(b'hello' * 4000))
    n = len(r) // 7 + 1
    run('CL 0 + chunked 20000 bytes, sent in 7 pieces', up, [r[i:i + n] for i in range(0, len(r), n)], 'refuse', gap=20)
    p = path_for('tcp-crash')
    run('CL 0 + chunk over the TCP listener', up,
        req(up, b'POST', p.encode(), b'Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', ch(b'hello')),
        'refuse', via='tcp')


def pipeline_cases(up):
    p1, p2, p3 = path_for('pipe'), path_for('pipe'), path_for('pipe')
    run('pipelined GET, POST (CL), POST (chunked) in one write', up,
        req(up, b'GET', p1.encode()) + req(up, b'POST', p2.encode(), b'Content-Length: 5\r\n', b'hello') +
        req(up, b'POST', p3.encode(), b'Transfer-Encoding: chunked\r\n', ch(b'world')),
        'pass', want=[('GET', p1), ('POST', p2), ('POST', p3)], nresp=3, timeout=8)
    p1, p2 = path_for('pipe-smuggle'), path_for('pipe-smuggle')
    run('pipelined: CL+TE POST, then a GET on the same connection', up,
        req(up, b'POST', p1.encode(), b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', ch(b'hello' + SMUG)) +
        req(up, b'GET', p2.encode()), 'refuse', nresp=2)
    p1, p2 = path_for('pipe-short'), path_for('pipe-short')
    run('pipelined: body shorter than its CL swallows the next request', up,
        req(up, b'POST', p1.encode(), b'Content-Length: 40\r\n', b'hello') + req(up, b'GET', p2.encode()),
        'either', want=[('POST', p1)], body_len=40, nresp=1)
    p1 = path_for('http10')
    p2 = path_for('http10')
    run('HTTP/1.0 keep-alive, two requests', up,
        req(up, b'GET', p1.encode(), b'Connection: keep-alive\r\n', version=b'HTTP/1.0') +
        req(up, b'GET', p2.encode(), version=b'HTTP/1.0'), 'pass', want=[('GET', p1)], allow=[('GET', p2)],
        nresp=2, need=1, timeout=6)
    p = path_for('http10-chunked')
    run('HTTP/1.0 with Transfer-Encoding: chunked', up,
        req(up, b'POST', p.encode(), b'Transfer-Encoding: chunked\r\n', ch(b'hello'), version=b'HTTP/1.0'),
        'either', want=[('POST', p)], body_len=5)
    p = path_for('bare-lf')
    run('bare LF line endings', up, req(up, b'GET', p.encode()).replace(b'\r\n', b'\n'), 'either',
        want=[('GET', p)])
    p = path_for('bare-lf-post')
    run('bare LF, POST with CL', up,
        req(up, b'POST', p.encode(), b'Content-Length: 5\r\n', b'hello').replace(b'\r\n', b'\n'), 'either',
        want=[('POST', p)], body_len=5)
    p = path_for('expect')
    head = req(up, b'POST', p.encode(), b'Content-Length: 5\r\nExpect: 100-continue\r\n')
    run('Expect: 100-continue, body after the 100', up, [head, b'hello'], 'pass', want=[('POST', p)],
        body_len=5, wait100=True)
    p = path_for('expect-now')
    run('Expect: 100-continue with the body at once', up,
        req(up, b'POST', p.encode(), b'Content-Length: 5\r\nExpect: 100-continue\r\n', b'hello'),
        'pass', want=[('POST', p)], body_len=5)
    p = path_for('expect-clte')
    run('Expect: 100-continue with CL+TE', up,
        req(up, b'POST', p.encode(), b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n',
            ch(b'hello' + SMUG)), 'refuse')
    p = path_for('hdr-space')
    run('Authorization with a space before the colon', up,
        req(up, b'GET', p.encode(), b'Authorization : Bearer forged\r\n'), 'either', want=[('GET', p)])
    p = path_for('nul-hdr')
    run('NUL in a header name', up, req(up, b'GET', p.encode(), b'X-A\x00uthorization: forged\r\n'), 'either',
        want=[('GET', p)])
    p = path_for('nul-path')
    run('NUL in the path', up, req(up, b'GET', p.encode() + b'/\x00/../../admin'), 'refuse')
    for raw in (b'/\xc0\xae\xc0\xae/admin', b'/\xc0\xae\xc0\xae/\xc0\xae\xc0\xae/admin', b'/caf\xc3\xa9', b'/\xff',
                b'/a\x7fb', b'/a b'):
        p = path_for('raw-path')
        run('raw bytes in the path %r' % raw, up, req(up, b'GET', p.encode() + raw), 'refuse')
    p = path_for('two-auth')
    run('two Authorization headers with the token', up,
        req(up, b'GET', p.encode(), b'Authorization: Bearer ' + H.tok[SEC[up][0]] + b'\r\n'), 'either',
        want=[('GET', p)])
    p = path_for('proxy-auth-plus-basic')
    run('token in Proxy-Authorization and a Basic Authorization', up,
        req(up, b'GET', p.encode(), b'Proxy-Authorization: Bearer ' + H.tok[SEC[up][0]] +
            b'\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\n', tok=False), 'either', want=[('GET', p)])
    p = path_for('fold-te')
    run('obs-fold hiding Transfer-Encoding in another header', up,
        req(up, b'POST', p.encode(), b'X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n',
            ch(b'hello' + SMUG)), 'either', want=[('POST', p)], body_len=5)
    p = path_for('two-host')
    run('two Host headers', up, req(up, b'GET', p.encode(), b'Host: evil.test\r\n'), 'either', want=[('GET', p)])
    p = path_for('upgrade')
    run('Upgrade: h2c with HTTP2-Settings', up,
        req(up, b'GET', p.encode(), b'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n'
            b'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'), 'either', want=[('GET', p)])
    p = path_for('te-trailers')
    run('TE: trailers and Trailer: Authorization', up,
        req(up, b'POST', p.encode(), b'TE: trailers\r\nTrailer: Authorization\r\nTransfer-Encoding: chunked\r\n',
            ch(b'hello', trailer=b'Authorization: Bearer forged\r\n')), 'either', want=[('POST', p)], body_len=5)
    for trick in (b'/%2e%2e/admin', b'/.%2e/admin', b'/%2E%2E/admin', b'%2f..%2fadmin', b'/..%2fadmin',
                  b'/%252e%252e/admin', b'/..;/admin', b'\\..\\admin', b'/%5c..%5cadmin', b'//..//admin',
                  b'/./../admin', b'/x/../../admin', b'/%2e%2e%2fadmin', b'/%u002e%u002e/admin'):
        p = path_for('trick')
        run('path trick %s' % trick.decode(), up, req(up, b'GET', p.encode() + trick), 'either',
            want=[('GET', p + trick.decode())])
    for what, method, sep in (('lower-case method post', b'post', b' '), ('method GeT', b'GeT', b' '),
                              ('two spaces in the request line', b'GET', b'  '),
                              ('tab in the request line', b'GET', b'\t'),
                              ('method DELETE\\x00GET', b'DELETE\x00GET', b' ')):
        p = path_for('reqline')
        r = req(up, b'GET', p.encode()).replace(b'GET /v1/', method + sep + b'/v1/', 1)
        run('request line: %s' % what, up, r, 'either', want=[('GET', p)], must_close=False)
    p = path_for('get-body')
    run('GET with a Content-Length body', up, req(up, b'GET', p.encode(), b'Content-Length: 5\r\n', b'hello'),
        'either', want=[('GET', p)], body_len=5)
    p = path_for('get-chunked')
    run('GET with a chunked body hiding a request', up,
        req(up, b'GET', p.encode(), b'Transfer-Encoding: chunked\r\n', ch(SMUG)), 'either', want=[('GET', p)],
        body_len=len(SMUG))
    p = path_for('post-cl0')
    run('POST with Content-Length: 0, then a pipelined GET', up,
        req(up, b'POST', p.encode(), b'Content-Length: 0\r\n') + req(up, b'GET', p.encode() + b'/2'), 'pass',
        want=[('POST', p), ('GET', p + '/2')], nresp=2, body_len=None)
    p = path_for('plus')
    run("'+' in the query carried unchanged", up, req(up, b'GET', p.encode() + b'?a=1+2&b=%2B&c=+'), 'pass',
        want=[('GET', p + '?a=1+2&b=%2B&c=+')])
    p = path_for('delete')
    run('DELETE (not a sealed method) refused', up, req(up, b'DELETE', p.encode()), 'refuse', must_close=False)


def token_and_routing_cases(up):
    s = SEC[up][0]
    t = H.tok[s]
    for name, extra, q in (('token in a cookie', b'Cookie: session=' + t + b'\r\n', b''),
                           ('token in another header', b'X-Api-Token: ' + t + b'\r\n', b''),
                           ('token as Basic user', b'X-Auth: Basic ' + base64.b64encode(t + b':x') + b'\r\n', b''),
                           ('token in the query', b'', b'?token=' + t),
                           ('token percent-encoded in the query', b'', b'?t=' + urllib.parse.quote(t, safe='').encode(
                               ).replace(b'_', b'%5F')),
                           ('token in the query, second Bearer', b'', b'?access_token=' + t + b'&x=1'),
                           ('token in a path segment', b'', b'/' + t),
                           ('token in a query name', b'', b'?' + t + b'=1')):
        p = path_for(name)
        run(name, up, req(up, b'GET', p.encode() + q, extra), 'either', want=[('GET', p + q.decode())])
    hs = [b'Forwarded: for=1.2.3.4;host=evil.test', b'X-Forwarded-For: 1.2.3.4', b'X-Forwarded-Host: evil.test',
          b'X-Forwarded-Proto: http', b'X-Forwarded-Prefix: /admin', b'X-Forwarded-Port: 1',
          b'X-Original-URI: /admin', b'X-Original-URL: /admin', b'X-Rewrite-URL: /admin', b'X-Original-Host: evil',
          b'X-Envoy-Original-Path: /admin', b'X-Envoy-Internal: true', b'X_Forwarded_For: 1.2.3.4',
          b'x-forwarded-host: evil2.test', b'X-Real-IP: 1.2.3.4']
    for hv in hs:
        p = path_for('routing')
        run('routing header %s' % hv.split(b':')[0].decode(), up, req(up, b'GET', p.encode(), hv + b'\r\n'),
            'either', want=[('GET', p)])


def forward_cases(up):
    s = SEC[up][0]
    port = str(PORT[up]).encode()
    t = H.tok[s]

    def fwd(target, extra=b'', host=None, method=b'GET', body=b''):
        return (method + b' ' + target + b' HTTP/1.1\r\nHost: ' + (host or b'127.0.0.1:' + port) +
                b'\r\nProxy-Authorization: Bearer ' + t + b'\r\n' + extra + b'\r\n' + body)
    p = path_for('abs')
    run('absolute-form (forward proxy)', up, fwd(b'http://127.0.0.1:' + port + p.encode()), 'pass',
        want=[('GET', p)])
    p = path_for('abs-tcp')
    run('absolute-form over the TCP listener', up, fwd(b'http://127.0.0.1:' + port + p.encode()), 'pass',
        want=[('GET', p)], via='tcp')
    for name, target, host in (
            ('absolute-form outside the prefix', b'http://127.0.0.1:%s/admin' % port, None),
            ('absolute-form with dot segments', b'http://127.0.0.1:%s/ok/../admin' % port, None),
            ('absolute-form with userinfo', b'http://127.0.0.1:%s@evil.test/ok/x' % port, b'evil.test'),
            ('absolute-form with a fragment trick', b'http://evil.test#@127.0.0.1:%s/ok/x' % port, None),
            ('absolute-form with a backslash', b'http://127.0.0.1:%s\\@evil.test/ok/x' % port, None),
            ('absolute-form, raw byte in path', b'http://127.0.0.1:%s/ok/\xc0\xae\xc0\xae/admin' % port, None)):
        run(name, up, fwd(target, host=host), 'refuse', must_close=False)
    p = path_for('abs-clte')
    run('absolute-form with CL+TE', up,
        fwd(b'http://127.0.0.1:' + port + p.encode(), b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
            method=b'POST', body=ch(b'hello' + PAD)), 'refuse')
    p = path_for('tcp-hijack')
    run('CL+TE unterminated prefix over the TCP listener', up,
        req(up, b'POST', p.encode(), b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', ch(b'hello' + PAD)),
        'refuse', via='tcp')


def oracle_cases():
    """No token: the same answer whatever the secret's name."""
    def ask(name, auth, via='unix'):
        r = H.agents['attacker'].xchg(b'GET /v1/proxy/' + name + b'/ok/x HTTP/1.1\r\nHost: x\r\n' + auth +
                                      b'Connection: close\r\n\r\n', via=via)
        body = b''.join(r['bodies'])
        code = re.search(rb'"(?:code|error)"\s*:\s*"([a-z_]+)"', body)
        return (r['statuses'][:1], code.group(1) if code else body[:80])
    if not H.wanted('secret-name oracle'):
        return
    for via in ('unix', 'tcp'):
        for what, auth in (('no token', b''), ('a malformed token', b'Authorization: Bearer cbt_nope\r\n'),
                           ('a well-formed unknown token',
                            b'Authorization: Bearer cbt_' + b'A' * 30 + b'\r\n')):
            a, b = ask(b'ng', auth, via), ask(b'no-such-secret', auth, via)
            H.report('secret-name oracle over %s, %s: existing %s / missing %s' % (via, what, a, b), a == b,
                     'the answers differ: existing secret %s, missing secret %s' % (a, b))
    other = b'Authorization: Bearer ' + H.tok['nd'] + b'\r\n'
    a, b = ask(b'ng', other), ask(b'no-such-secret', other)
    H.report('a token for another secret: existing %s / missing %s' % (a, b), a == b,
             'the answers differ: existing secret %s, missing secret %s' % (a, b))


from cases_more import php_cases, response_cases, stall_cases  # noqa: E402


def main():
    for up in ('nginx', 'node', 'python', 'php', 'evil'):
        H.mint('attacker', SEC[up][0])
        if SEC[up][1]:
            H.mint('victim', SEC[up][1])
    t0 = time.time()
    for up in ('nginx', 'node', 'python'):
        print('# %s: framing' % up, flush=True)
        framing_cases(up)
        print('# %s: pipelining and parser gaps' % up, flush=True)
        pipeline_cases(up)
        print('# %s: tokens and routing headers' % up, flush=True)
        token_and_routing_cases(up)
        print('# %s: forward form and the TCP listener' % up, flush=True)
        forward_cases(up)
    print('# secret-name oracle', flush=True)
    oracle_cases()
    print('# hostile upstream answers', flush=True)
    response_cases(H, run, req, path_for)
    print('# stalled uploads', flush=True)
    stall_cases(H, req, path_for, SEC)
    print('# PHP behind a POST-only seal', flush=True)
    php_cases(H, run, req, path_for)
    print('# the crash (last: it ends the daemon where it is not fixed)', flush=True)
    for up in ('nginx', 'node', 'python'):
        crash_cases(up)
    print('# %d cases, %d failed, %.0f s' % (len(H.results), H.fails, time.time() - t0), flush=True)
    for a in H.agents.values():
        a.close()
    return H.finish()


if __name__ == '__main__':
    if sys.argv[1] == 'random':
        import fuzzgen
        sys.exit(fuzzgen.main(H, conf, req, int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else 0))
    sys.exit(main())
