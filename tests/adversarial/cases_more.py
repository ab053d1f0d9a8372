# SPDX-License-Identifier: Apache-2.0
"""Cases against the hostile upstream (upstream-evil.py) and the PHP app."""
import os, time, zlib

from harness import value_forms


# Late answers timed to land while the victim's request is being taken from
# the pool and sent (it goes 300 ms after the attacker's answer, plus the
# time to answer it): the race window of an idle-connection check, which only
# a pool never shared between uids closes (with a shared pool the outcome is
# timing; CB_ADV_RACE_MS='' turns them off, or sets other delays).
RACE_MS = [int(x) for x in os.environ.get('CB_ADV_RACE_MS', '290 300 305 310 320 340').split()]


def ungzip(b):
    for off in range(0, min(len(b), 64)):
        if b[off:off + 2] == b'\x1f\x8b':
            try:
                return zlib.decompressobj(31).decompress(b[off:])
            except zlib.error:
                pass
    return b''


def response_cases(H, run, req, path_for):
    v = H.vals['evil']
    fs = value_forms(v)

    def get(path, who='attacker'):
        return H.agents[who].xchg(req('evil', b'GET', path.encode(), secret='evil' if who == 'attacker' else 'evil2'),
                                  timeout=6)

    def ag_head(path):
        return H.agents['attacker'].xchg(req('evil', b'HEAD', path.encode()), timeout=6, head=True)

    # Framing of the answer: 502, and the connection never reused.
    for kind in ('clte', 'twocl', 'cllist', 'b204', 'b304', 'te-chunked-cl', 'b204-late', 'b204-late-20',
                 'extra-late', 'extra-late-20', 'extra-late-100', 'head-late', 'head-late-20') + tuple(
                     'extra-late-%d' % ms for ms in RACE_MS):
        if not H.wanted('evil: answer with %s' % kind):
            continue
        m = H.logs.mark()
        bad = path_for('resp-' + kind) + '/' + kind
        r = ag_head(bad) if kind.startswith('head') else get(bad)
        time.sleep(0.3)                     # the late bytes are in
        follow = [path_for('after-' + kind) + '/ok' for _ in range(2)]
        fr = [get(p, 'victim') for p in follow]      # another uid, the same pool
        time.sleep(0.1)
        recs = H.logs.since(m)['evil'][0]
        why = []
        if kind in ('b204', 'b304') or '-late' in kind:
            # A bodiless status with bytes after it: whatever the tool gets,
            # those bytes must never become the next request's answer.
            pass
        elif r['statuses'][-1:] != [502]:
            why.append('the tool got %s, not 502: %s' % (r['statuses'], H.show(r['raw'], 300)))
        bconn = [x['conn'] for x in recs if x.get('target') == bad]
        for p, x in zip(follow, fr):
            if x['statuses'][-1:] != [200] or (b'ok ' + p.encode()) not in b''.join(x['bodies']):
                why.append('the next request %s got %s %s (desynchronised)' % (p, x['statuses'],
                                                                                H.show(b''.join(x['bodies']), 200)))
            if any(y['conn'] in bconn for y in recs if y.get('target') == p):
                why.append('the next request went on the connection that answered badly')
        H.report('evil: answer with %s' % kind, not why, '; '.join(why), got=r)
        H.drop_pool()
    # The secret echoed in forms the redactor must know.
    for kind, want502 in (('gzip-list', True), ('te-gzip', True), ('pct-lower', False), ('pct-quote', False),
                          ('pct-plus', False), ('pct-upper', False), ('hex', False), ('HEX', False),
                          ('json-u', False), ('b64-1', False), ('b64-2', False), ('hdr-raw', False),
                          ('hdr-pct', False), ('trailer', False),
                          # a case change; one step of HTML or C/Python/JS escaping
                          ('upper', False), ('lower', False), ('hex-mixed', False), ('hdr-upper', False),
                          ('html-dec', False), ('html-hex', False), ('html-nosemi', False), ('html-mixed', False),
                          ('c-hex', False), ('c-oct', False), ('js-brace', False)):
        if not H.wanted('evil: secret echoed as %s' % kind):
            continue
        r = get(path_for('echo-' + kind) + '/' + kind)
        body = b''.join(r['bodies'])
        whole = r['raw'] + body + ungzip(body) + ungzip(r['raw'])
        why = []
        if v in whole:
            why.append('the value reached the tool' + (' (gzipped)' if v not in r['raw'] + body else ''))
        if any(f in whole for k, f in fs.items() if k == kind or (kind == 'hdr-pct' and k == 'pct-lower')):
            why.append('the value reached the tool as %s' % kind)
        if want502 and r['statuses'][-1:] != [502]:
            why.append('answered %s, not 502' % r['statuses'])
        if not r['statuses']:
            why.append('no answer')
        H.report('evil: secret echoed as %s' % kind, not why, '; '.join(why), got=r)
        H.drop_pool()


def php_cases(H, run, req, path_for):
    def p_(name):
        return path_for(name).replace('/ok/', '/app/', 1)

    def check(path):
        def c(r):
            e = []
            if r.get('method') != 'POST' or r.get('effective_method') != 'POST':
                e.append('PHP saw method %s, effective %s' % (r.get('method'), r.get('effective_method')))
            if r.get('effective_path') != path:
                e.append('PHP effective path %s, not %s' % (r.get('effective_path'), path))
            return e
        return c

    form = b'Content-Type: application/x-www-form-urlencoded\r\n'

    def post(name, headers=b'', body=b'', q=b'', expect='either', pieces=False, chunked=False, **kw):
        p = p_(name)
        if chunked:
            hb = b'Transfer-Encoding: chunked\r\n'
            b = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 3]), body[i:i + 3]) for i in range(0, len(body), 3))
            b += b'0\r\n\r\n'
        else:
            hb, b = b'Content-Length: %d\r\n' % len(body), body
        r = req('php', b'POST', p.encode() + q, headers + hb, b)
        if pieces:
            cut = r.index(b'\r\n\r\n') + 4
            r = [r[:cut]] + [r[i:i + 1] for i in range(cut, len(r))]
        run(name, 'php', r, expect, want=[('POST', p + q.decode())], rec_check=check(p), gap=2 if pieces else 0,
            path_only=True, must_close=False, **kw)

    post('control: a form POST passes', form, b'a=1&b=2', expect='pass')
    mp = (b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
          b'Content-Type: application/octet-stream\r\n\r\n' + bytes(range(256)) * 8 + b'\r\n--XyZ--\r\n')
    post('control: a multipart file upload passes', b'Content-Type: multipart/form-data; boundary=XyZ\r\n', mp,
         expect='pass')
    for h in (b'X-HTTP-Method-Override: DELETE', b'X_HTTP_METHOD_OVERRIDE: DELETE', b'x-http-method-override: delete',
              b'X-Http-Method-Override:  DELETE ', b'X-HTTP-Method: DELETE', b'X_HTTP_Method: DELETE',
              b'X-Method-Override: DELETE', b'X_Method_Override: DELETE', b'X-HTTP-Method-Override : DELETE',
              b'X_Original_URL: /admin', b'X-Original-URL: /admin', b'x_original_url: /admin',
              b'X-Rewrite-URL: /admin', b'X_Rewrite_URL: /admin', b'X-Original-URI: /admin'):
        post('header ' + h.decode(), form + h + b'\r\n', b'a=1')
    for q in (b'?_method=DELETE', b'?.method=DELETE', b'?%20_method=DELETE', b'?+_method=DELETE',
              b'?%5Fmethod=DELETE', b'?%5fmethod=DELETE', b'?%2Emethod=DELETE', b'?%2emethod=DELETE',
              b'?_method=POST&_method=DELETE', b'?a=1&%20%20_method=DELETE', b'?_method=DELETE%00'):
        post('query ' + q.decode(), form, b'a=1', q=q)
    for b in (b'_method=DELETE', b'a=1&_method=DELETE', b'.method=DELETE', b'%20_method=DELETE', b'+_method=DELETE',
              b'%5Fmethod=DELETE', b'%5fmethod=DELETE', b'_method=POST&_method=DELETE', b'a=1&%2Emethod=delete',
              b'_method=%44ELETE'):
        post('form body ' + b.decode(), form, b)
    post('form body _method=DELETE, 1 byte per write', form, b'a=1&_method=DELETE', pieces=True)
    post('form body _method=DELETE, chunked 3 bytes a chunk', form, b'a=1&_method=DELETE', chunked=True)
    for ct in (b'application/x-www-form-urlencoded; charset=UTF-8', b'Application/X-WWW-Form-Urlencoded',
               b'application/x-www-form-urlencoded ;charset=utf-8'):
        post('form body _method=DELETE, Content-Type ' + ct.decode(), b'Content-Type: ' + ct + b'\r\n',
             b'_method=DELETE')

    for ct, b in ((b'application/json', b'{"a": 1, "_method": "DELETE"}'),
                  (b'application/json', b'{"_method":"DELETE"}'),
                  (b'application/json', b'{"\\u005fmethod": "DELETE"}'),
                  (b'application/vnd.api+json', b'{"_method": "DELETE"}'),
                  (b'application/json; charset=utf-8', b'{"x": {"y": 1}, "_method" : "delete"}')):
        post('JSON body %s, %s' % (b.decode(), ct.decode()), b'Content-Type: ' + ct + b'\r\n', b)
    jh = b'Content-Type: application/json\r\n'
    post('JSON body, duplicate key (the last wins in PHP)', jh, b'{"_method": "POST", "_method": "DELETE"}')
    post('JSON body _method, 1 byte per write', jh, b'{"a": "x", "_method": "DELETE"}', pieces=True)
    post('JSON body _method, chunked 3 bytes a chunk', jh, b'{"a": "x", "_method": "DELETE"}', chunked=True)

    def part(disp, value=b'DELETE'):
        return b'--XyZ\r\nContent-Disposition: form-data; ' + disp + b'\r\n\r\n' + value + b'\r\n'
    mph = b'Content-Type: multipart/form-data; boundary=XyZ\r\n'
    for disp in (b'name="_method"', b'name=_method', b'name=".method"', b'name=" _method"', b"name='_method'",
                 b'NAME="_method"', b'name="a"; name="_method"'):
        post('multipart part ' + disp.decode(), mph, part(b'name="a"', b'1') + part(disp) + b'--XyZ--\r\n')
    body = part(b'name="f"; filename="x.bin"', b'\x00' * 3000) + part(b'name="_method"') + b'--XyZ--\r\n'
    post('multipart: a file, then _method, chunked', mph, body, chunked=True)
    post('multipart _method, quoted boundary', b'Content-Type: multipart/form-data; boundary="XyZ"\r\n',
         part(b'name="_method"') + b'--XyZ--\r\n')
    post('multipart _method, 1 byte per write', mph, part(b'name="_method"') + b'--XyZ--\r\n', pieces=True)
    for ct in (b'multipart/form-data; charset=utf-8; boundary=XyZ', b'multipart/form-data;boundary=XyZ',
               b'multipart/form-data; BOUNDARY=XyZ', b'Multipart/Form-Data; boundary=XyZ',
               b'multipart/form-data; boundary=XyZ; boundary=Other', b'multipart/form-data; boundary=Other; boundary=XyZ',
               b'multipart/form-data; boundary="XyZ"; charset=utf-8', b'multipart/form-data, text/plain; boundary=XyZ'):
        post('multipart _method, Content-Type ' + ct.decode(), b'Content-Type: ' + ct + b'\r\n',
             part(b'name="_method"') + b'--XyZ--\r\n')
    post('multipart _method, CRLF-less final boundary', mph, part(b'name="_method"') + b'--XyZ--')
    post('multipart _method, LF-only lines', mph,
         b'--XyZ\nContent-Disposition: form-data; name="_method"\n\nDELETE\n--XyZ--\n')
    p = p_('get')
    run('GET (not sealed) refused', 'php', req('php', b'GET', p.encode()), 'refuse', must_close=False)
    p = p_('delete')
    run('DELETE (not sealed) refused', 'php', req('php', b'DELETE', p.encode()), 'refuse', must_close=False)


def stall_cases(H, req, path_for, sec):
    """Stalled uploads by the attacker must not hold up the victim: four
    attacker processes each send the head and 10 of 100,000 announced body
    bytes, then hold their connections; the victim's requests on the same
    upstream (same pool, one transfer loop) are answered meanwhile."""
    import threading
    from harness import Agent
    for up in ('nginx', 'node', 'python'):
        name = '%s: 4 stalled uploads do not hold up the victim' % up
        if not H.wanted(name):
            continue
        ags = [Agent(H.conf, H.conf['uids']['attacker']) for _ in range(4)]
        ts = []
        for i, ag in enumerate(ags):
            r = req(up, b'POST', path_for('stall').encode(), b'Content-Length: 100000\r\n', b'x' * 10)
            t = threading.Thread(target=ag.xchg, args=(r,), kwargs={'timeout': 6})
            t.start()
            ts.append(t)
        time.sleep(0.5)
        why = []
        for i in range(2):
            vt = path_for('stall-victim').replace('/ok/', '/ok/victim-', 1)
            vr = H.agents['victim'].xchg(req(up, b'GET', vt.encode(), secret=sec[up][1]), timeout=10)
            if vr['statuses'][-1:] != [200] or vt.encode() not in b''.join(vr['bodies']):
                why.append('victim request %s answered %s while uploads stalled' % (vt, vr['statuses']))
        for t in ts:
            t.join()
        for ag in ags:
            ag.close()
        H.report(name, not why, '; '.join(why))
