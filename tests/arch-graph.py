#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The dependency graph of broker/, derived from the sources and the objects.

Arrows (A -> B: A depends on B):
  include  A's source has `#include "b.h"` and b.h belongs to B;
  call     A's object has an undefined symbol that B's object defines
           (nm: functions and data, e.g. the daemon-wide `cbd`).
A node is one .c file (its stem); a header belongs to the .c file of the
same stem in the same folder (x_internal.h to x.c), else it is a node of
its own (daemon.h).  A folder node is a subfolder of broker/, or "main"
for files at broker/'s top.

Usage: arch-graph.py SRCDIR BUILDDIR [--folders] [--list] [--check JSON]
  figures: nodes, arrows, levels (longest path once back-arrows are
  removed), back-arrows (against a greedy feedback-arc-set order, Eades,
  Lin & Smyth 1993), cycles (strongly connected components > 1 node).
  --check: the rules tests/arch-check.sh enforces (see there).
"""
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def broker_sources(src):
    root = os.path.join(src, 'broker')
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(('.c', '.h')):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def node_of(rel, cfiles):
    """The node a broker/-relative source path belongs to."""
    d, f = os.path.split(rel)
    stem = f[:-2]
    if f.endswith('.c'):
        return os.path.join(d, stem)
    for s in (stem, stem[:-len('_internal')] if stem.endswith('_internal') else None):
        if s and os.path.join(d, s + '.c') in cfiles:
            return os.path.join(d, s)
    return os.path.join(d, f)  # a header of its own


def folder_of(node):
    d = os.path.dirname(node)
    return d.split(os.sep)[0] if d else 'main'


def objects(src, build):
    """broker/-relative .c path -> object path, from compile_commands.json."""
    with open(os.path.join(build, 'compile_commands.json')) as fh:
        cc = json.load(fh)
    broot = os.path.realpath(os.path.join(src, 'broker'))
    out = {}
    for e in cc:
        f = os.path.realpath(os.path.join(e['directory'], e['file']))
        if not f.startswith(broot + os.sep):
            continue
        out[os.path.relpath(f, broot)] = os.path.join(e['directory'], e['output'])
    return out


def nm_all(objs):
    """{object: (defined, weak, undefined)} from one nm run over all of them."""
    out = {o: (set(), set(), set()) for o in objs}
    r = subprocess.run(['nm', '-A'] + sorted(objs), capture_output=True, text=True, check=True)
    for line in r.stdout.splitlines():
        obj, _, rest = line.rpartition(':')
        if obj not in out:  # "file.o:" prefix; a ':' in a symbol is not ours
            continue
        defined, weak, undefined = out[obj]
        p = rest.split()
        if len(p) == 2 and p[0] == 'U':
            undefined.add(p[1])
        elif len(p) == 3 and p[1] in 'TDBRCG':
            defined.add(p[2])
        elif len(p) == 3 and p[1] in 'VW':
            weak.add(p[2])
    return out


def build_graph(src, build):
    files = broker_sources(src)
    cfiles = {f for f in files if f.endswith('.c')}
    headers = defaultdict(list)  # basename -> [rel]
    for f in files:
        if f.endswith('.h'):
            headers[os.path.basename(f)].append(f)
    nodes = {node_of(f, cfiles) for f in files}
    edges = defaultdict(set)  # (a, b) -> {'include', 'call'}
    members = defaultdict(list)
    for f in files:
        a = node_of(f, cfiles)
        members[a].append(f)
        with open(os.path.join(src, 'broker', f), errors='replace') as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            base = os.path.basename(inc)
            cand = headers.get(base, [])
            # "x.h" resolves like the compiler does: own folder first.
            own = [h for h in cand if os.path.dirname(h) == os.path.dirname(f)]
            for h in (own or cand)[:1]:
                b = node_of(h, cfiles)
                if b != a:
                    edges[(a, b)].add('include')
                if h.endswith('_internal.h') and folder_of(a) != folder_of(b):
                    edges[(a, b)].add('internal:' + base)
    objs = objects(src, build)
    defs, weakdefs, undefs = {}, {}, {}
    for o in objs.values():
        if not os.path.exists(o):
            sys.exit(f'arch-graph: {o} is not built (build {build} first)')
    syms = nm_all(objs.values())
    for rel, o in sorted(objs.items()):
        d, w, u = syms[o]
        n = node_of(rel, cfiles)
        undefs[n] = u | w  # a weak definition is a call the linker may send elsewhere
        for s in d:
            defs.setdefault(s, n)
        for s in w:
            weakdefs.setdefault(s, n)
    for s, n in weakdefs.items():
        defs.setdefault(s, n)
    for a, u in undefs.items():
        for s in u:
            b = defs.get(s)
            if b and b != a:
                edges[(a, b)].add('call:' + s)
    return nodes, edges, undefs, defs, members


def sccs(nodes, adj):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def eades_order(nodes, arrows):
    """A vertex order with few arrows pointing back (dependents first)."""
    out_e, in_e = defaultdict(set), defaultdict(set)
    for a, b in arrows:
        out_e[a].add(b)
        in_e[b].add(a)
    left = set(nodes)
    s1, s2 = [], []
    while left:
        changed = True
        while changed:
            changed = False
            for v in sorted(left):
                if not (out_e[v] & left):  # a sink: goes last
                    s2.insert(0, v)
                    left.discard(v)
                    changed = True
            for v in sorted(left):
                if not (in_e[v] & left):  # a source: goes first
                    s1.append(v)
                    left.discard(v)
                    changed = True
        if left:
            v = max(sorted(left), key=lambda x: len(out_e[x] & left) - len(in_e[x] & left))
            s1.append(v)
            left.discard(v)
    return s1 + s2


def figures(nodes, arrows):
    order = eades_order(nodes, arrows)
    pos = {v: i for i, v in enumerate(order)}
    back = sorted((a, b) for a, b in arrows if pos[a] > pos[b])
    fwd = defaultdict(set)
    for a, b in arrows:
        if pos[a] < pos[b]:
            fwd[a].add(b)
    level = {}
    for v in reversed(order):  # sinks first
        level[v] = 1 + max((level[w] for w in fwd[v]), default=-1)
    adj = defaultdict(set)
    for a, b in arrows:
        adj[a].add(b)
    cycles = [c for c in sccs(nodes, adj) if len(c) > 1]
    return order, level, back, cycles


def report(title, nodes, arrows, show):
    order, level, back, cycles = figures(nodes, arrows)
    height = 1 + max(level.values(), default=-1)
    print(f'{title}: {len(nodes)} nodes, {len(arrows)} arrows, {height} levels, '
          f'{len(back)} back-arrows, {len(cycles)} cycles '
          f'(largest {max((len(c) for c in cycles), default=0)} nodes)')
    if show:
        for lv in range(height - 1, -1, -1):
            print(f'  level {lv:2}: ' + ' '.join(sorted(v for v in nodes if level[v] == lv)))
        for a, b in back:
            print(f'  back-arrow {a} -> {b}')
        for c in cycles:
            print(f'  cycle ({len(c)}): ' + ' '.join(c))
    return order, level, back, cycles


def folder_arrows(edges):
    fa = defaultdict(set)
    for (a, b), why in edges.items():
        fa_, fb = folder_of(a), folder_of(b)
        if fa_ != fb:
            fa[(fa_, fb)].add(f'{a}->{b}')
    return fa


def check(src, build, nodes, edges, undefs, defs, members, allow_arrows, allow_cbd, top_layers):
    """Exit non-zero on any rule broken; print each one."""
    bad = []
    fa = folder_arrows(edges)
    folders = {folder_of(n) for n in nodes}
    allowed = set(allow_arrows)
    for a, b in sorted(allowed):
        if (a, b) not in fa:
            bad.append(f'allowlisted folder arrow {a} -> {b} no longer exists: '
                       'remove it from tests/arch-check.sh (the list may only shrink)')
    # 1. No cycle between folders once the allowlisted arrows are set aside.
    adj = defaultdict(set)
    for (a, b) in fa:
        if (a, b) not in allowed:
            adj[a].add(b)
    for c in sccs(folders, adj):
        if len(c) > 1:
            arrows = sorted(f'{a} -> {b} ({", ".join(sorted(fa[(a, b)])[:3])})'
                            for (a, b) in fa if a in c and b in c and (a, b) not in allowed)
            bad.append(f'cycle between broker/ folders {" ".join(c)}:\n      ' + '\n      '.join(arrows))
    # 2. No subsystem calls up into api/, http/ or main.c.
    for (a, b), why in sorted(fa.items()):
        if (a, b) in allowed:
            continue
        if b in top_layers and a not in top_layers[b]:
            bad.append(f'{a}/ calls up into {b}/: {", ".join(sorted(why)[:4])}')
    # 3. broker/'s top holds main.c and daemon.h only (and main_*.c,
    #    main_internal.h: main.c split in files, issue 18): a new file goes
    #    into the folder of its subsystem.
    for n in sorted(nodes):
        for m in members[n]:
            if os.sep not in m and m not in ('main.c', 'daemon.h', 'main_internal.h') and \
                    not (m.startswith('main_') and m.endswith('.c')):
                bad.append(f'broker/{m} is at broker/\'s top: move it into the folder of its subsystem '
                           '(docs/architecture.md) and list it there in broker/meson.build')
    # 4. A folder's *_internal.h is its own business.
    for (a, b), why in sorted(edges.items()):
        for w in sorted(why):
            if w.startswith('internal:'):
                bad.append(f'broker/{a} includes {w[9:]}, which is internal to {folder_of(b)}/: '
                           'put what it needs in that folder\'s contract header')
    # 5. The daemon-wide global: only the listed files may reference it.
    users = set()
    for n, u in undefs.items():
        if 'cbd' in u:
            users.add(n)
    if 'cbd' in defs:
        users.add(defs['cbd'])
    user_files = set()
    for n in users:
        user_files.update(m for m in members[n] if m.endswith('.c'))
    for f in sorted(user_files - set(allow_cbd)):
        bad.append(f'broker/{f} references the daemon-wide global `cbd` and is not in '
                   'the list of files that still may: give its subsystem its own state instead')
    for f in sorted(set(allow_cbd) - user_files):
        bad.append(f'broker/{f} no longer references `cbd`: remove it from the list in tests/arch-check.sh')
    return bad


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    src, build = args[0], args[1]
    nodes, edges, undefs, defs, members = build_graph(src, build)
    if '--check' in args:
        cfg = json.loads(args[args.index('--check') + 1])
        top = {k: set(v) for k, v in cfg['top_layers'].items()}
        allow = [tuple(x.split('>')) for x in cfg['allow_arrows']]
        # First, that the check can fail: each made-up arrow (NODE>NODE) or
        # use of cbd (NODE) must be refused with the expected message.
        for kind, what, want in cfg.get('selftest', []):
            e2 = defaultdict(set, {k: set(v) for k, v in edges.items()})
            u2 = {k: set(v) for k, v in undefs.items()}
            if kind == 'internal':
                x, y = what.split('>')
                e2[(x, y)].add('internal:injected_internal.h')
            elif kind == 'arrow':
                x, y = what.split('>')
                assert x in nodes and y in nodes, f'no such node: {what}'
                e2[(x, y)].add('call:injected')
            else:
                assert what in nodes, f'no such node: {what}'
                u2[what].add('cbd')
            bad = check(src, build, nodes, e2, u2, defs, members, allow, cfg['allow_cbd'], top)
            if not any(want in b for b in bad):
                print(f'FAIL: self-test: a made-up {kind} {what} was not refused with "{want}": '
                      f'the check cannot fail ({bad})')
                sys.exit(1)
        if cfg.get('selftest'):
            print(f'self-test: {len(cfg["selftest"])} made-up violations refused')
        bad = check(src, build, nodes, edges, undefs, defs, members, allow, cfg['allow_cbd'], top)
        fa = folder_arrows(edges)
        folders = {folder_of(n) for n in nodes}
        report('broker/ folders', folders, set(fa), '--list' in args)
        allowed = {tuple(x.split('>')) for x in cfg['allow_arrows']}
        report('broker/ folders less the allowlisted arrows', folders, set(fa) - allowed, '--list' in args)
        for b in bad:
            print('FAIL: ' + b)
        sys.exit(1 if bad else 0)
    show = '--list' in args
    report('broker/ files', nodes, set(edges), show)
    if '--folders' in args or show:
        fa = folder_arrows(edges)
        folders = {folder_of(n) for n in nodes}
        report('broker/ folders', folders, set(fa), show)
        if show:
            for (a, b), why in sorted(fa.items()):
                print(f'  folder arrow {a} -> {b}: {len(why)} file arrows, e.g. {sorted(why)[0]}')


if __name__ == '__main__':
    main()
