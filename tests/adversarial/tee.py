#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A byte-exact recorder in front of each upstream HTTP server.

    tee.py --dir DIR [--cert PEM --key KEY] NAME:BACKEND_PORT[:tls] ...

For each NAME it listens on a free loopback port (TLS when ':tls' is given,
with --cert/--key), and relays every accepted connection 1:1 to
127.0.0.1:BACKEND_PORT, so the broker's pooled connection to the tee is one
pooled connection to the server behind it.  Every byte is appended to
DIR/NAME.raw.jsonl as {"c": connection, "d": "up"|"down", "b": base64} before
it is passed on: "up" is what the broker sent, "down" what the server
answered.  Prints "NAME PORT" per listener, "ctl PORT", then "ready".  A
connection to the ctl port closes every open relay connection, then answers
"dropped" (the harness drops the broker's pool between cases, and knows
when it is done).
"""
import argparse, base64, json, os, signal, socket, ssl, threading

lock = threading.Lock()
live = set()
conn_ids = iter(range(1, 1 << 62))


def record(log, cid, d, data):
    line = json.dumps({'c': cid, 'd': d, 'b': base64.b64encode(data).decode()}) + '\n'
    with lock:
        log.write(line)
        log.flush()


def pump(src, dst, log, cid, d):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            record(log, cid, d, data)
            dst.sendall(data)
    except (OSError, ValueError):
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(name, lsock, backend, ctx, log):
    while True:
        c, _ = lsock.accept()
        threading.Thread(target=handle, args=(c, backend, ctx, log), daemon=True).start()


def handle(c, backend, ctx, log):
    cid = next(conn_ids)
    try:
        if ctx:
            c.settimeout(10)
            c = ctx.wrap_socket(c, server_side=True)
            c.settimeout(None)
        b = socket.create_connection(('127.0.0.1', backend))
    except (OSError, ssl.SSLError) as e:
        record(log, cid, 'err', str(e).encode())
        c.close()
        return
    with lock:
        live.update((c, b))
    t = threading.Thread(target=pump, args=(b, c, log, cid, 'down'), daemon=True)
    t.start()
    pump(c, b, log, cid, 'up')
    t.join()
    with lock:
        live.discard(c)
        live.discard(b)
    c.close()
    b.close()


def drop_all():
    with lock:
        socks = list(live)
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def control(ls):
    while True:
        c, _ = ls.accept()
        drop_all()
        c.sendall(b'dropped\n')
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dir', required=True)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('spec', nargs='+')
    a = ap.parse_args()
    for spec in a.spec:
        parts = spec.split(':')
        name, backend = parts[0], int(parts[1])
        ctx = None
        if len(parts) > 2 and parts[2] == 'tls':
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(a.cert, a.key)
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('127.0.0.1', 0))
        ls.listen(128)
        log = open(os.path.join(a.dir, name + '.raw.jsonl'), 'a')
        threading.Thread(target=serve, args=(name, ls, backend, ctx, log), daemon=True).start()
        print(name, ls.getsockname()[1], flush=True)
    cl = socket.socket()
    cl.bind(('127.0.0.1', 0))
    cl.listen(8)
    threading.Thread(target=control, args=(cl,), daemon=True).start()
    print('ctl', cl.getsockname()[1], flush=True)
    print('ready', flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        signal.pause()


if __name__ == '__main__':
    main()
