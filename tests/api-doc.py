#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""broker/API.md against the route table (tests/api-doc.sh says what is checked).

Usage: credbrokerd --routes | api-doc.py API.md SRCDIR
"""
import difflib
import glob
import os
import re
import sys

doc = open(sys.argv[1]).read()
src = sys.argv[2]
table = sys.stdin.read()
bad = 0

# 1. The generated block is what --routes prints.
m = re.search(r"<!-- credbrokerd --routes -->\n```\n(.*?)```\n", doc, re.S)
if not m:
    print('FAIL: API.md has no "<!-- credbrokerd --routes -->" block')
    sys.exit(1)
if m.group(1) != table:
    bad = 1
    print("FAIL: API.md's route table differs from credbrokerd --routes:")
    sys.stdout.writelines(difflib.unified_diff(m.group(1).splitlines(True), table.splitlines(True), "API.md",
                                               "--routes"))
else:
    print("ok: the route table block is what credbrokerd --routes prints (%d routes)" % len(table.splitlines()))


# 2. The described routes are exactly the table's.
def spell(pat):
    def ph(mm):
        name = mm.group(1)
        return name[:-3].upper().replace("_", "/") if name.endswith("...") else name.upper()
    return re.sub(r"\{([^}]*)\}", ph, pat)


listed, names = set(), {"admin"}  # "admin": the admin.sock gate's refusal
for line in table.splitlines():
    f = line.split()
    method, pat = f[1], f[2]
    listed.add(method if pat == "*" else method + " " + spell(pat))
    names.update(f[4:])

rows = set()
body = doc[:m.start()] + doc[m.end():]
for line in body.splitlines():
    if not line.startswith("|"):
        continue
    cells = [c.strip() for c in line.strip("|").split("|")]
    for c in cells[:2]:
        for span in re.findall(r"`([^`]*)`", c):
            if re.fullmatch(r"(GET|POST|DELETE|PUT|PATCH|CONNECT|ANY)( \S+)?", span):
                rows.add(span)
for r in sorted(listed - rows):
    bad = 1
    print("FAIL: route %s is served but API.md describes it in no table row" % r)
for r in sorted(rows - listed):
    bad = 1
    print("FAIL: API.md describes %s, which is not a route the daemon serves" % r)
if not (listed ^ rows):
    print("ok: API.md describes exactly the %d routes of the table" % len(listed))

# 3. Every audit name a handler sets (rq->route = "...") is the table's.
seen, unknown = 0, 0
for f in sorted(glob.glob(os.path.join(src, "broker", "**", "*.c"), recursive=True)):
    text = open(f, errors="replace").read()
    for expr in re.findall(r"rq->route\s*=\s*([^;]+);", text):
        expr = re.sub(r"\bstr\w*cmp\([^)]*\)", "", expr)  # the literals compared, not assigned
        for lit in re.findall(r'"([^"]*)"', expr):
            seen += 1
            if lit not in names:
                bad = unknown = 1
                print('FAIL: %s records under route name "%s", which the table does not list' %
                      (os.path.relpath(f, src), lit))
if not unknown:
    print("ok: the %d route names the handlers set are all in the table" % seen)
sys.exit(bad)
