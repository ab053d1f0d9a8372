#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tool-output-guard.sh: run by an agent harness on each tool's output before
# it reaches the model.  The output goes through `credbroker redact` (the
# broker's leak scanner: every live secret, raw or base64/URL/JSON-encoded,
# and every credbroker token):
#
#   clean         the output is passed on unchanged, exit 0
#   a sighting    the output is WITHHELD: a one-line notice goes to stdout
#                 instead (what the model sees), a line to stderr (the
#                 operator's log), exit 3.  The broker has already raised its
#                 alert and applied the secret's on_leak policy (by default:
#                 every token of the secret revoked, the secret marked
#                 compromised until it is rotated).  With --redacted the
#                 redacted output ([REDACTED:name]) is passed on instead of
#                 the notice (still exit 3).
#   broker down   fail closed: nothing passed on, a notice, exit 2
#
# Usage (either form):
#   some-tool ARGS | tool-output-guard.sh [--redacted]
#   tool-output-guard.sh [--redacted] -- some-tool ARGS     (stdout and stderr guarded)
#
# Needs a "scan" grant for the harness's uid in the broker's policy.  The
# broker's peer is the credbroker CLI this script runs (not bash), so the
# client selects that executable:
#   "clients": {"harness": {"uid": 1000, "exe": "/usr/bin/credbroker"}},
#   "grants":  [{"client": "harness", "secret": "*", "use": ["scan"]}]
# ("*" here only means: scan against every live secret; the harness learns
# names, never values).  Trade-off: a scan grant is a confirmation oracle —
# whoever holds it can ask "is this guess a live secret?" (harmless for
# high-entropy keys, not for guessable passwords) and /v1/scan findings give
# offsets.  The exe selector does not confine it (any process of that uid
# can run credbroker), so run the harness under a uid the tools and the
# agent do NOT run as; never give the agent's own uid a scan grant.
# Optional: GUARD_ALERT_CMD, a command run on a
# sighting with the notice on stdin (page someone, stop the agent).
# Memory stays bounded: the redacted text waits in a private temp file until
# the verdict is known.
set -uo pipefail

CREDBROKER=${CREDBROKER:-credbroker}
redacted=0
while [ $# -gt 0 ]; do
        case "$1" in
        --redacted) redacted=1; shift ;;
        --) shift; break ;;
        -h | --help) sed -n '3,38p' "$0"; exit 0 ;;
        *) echo "tool-output-guard: unknown option '$1'" >&2; exit 2 ;;
        esac
done

umask 077
out=$(mktemp "${TMPDIR:-/tmp}/guard.XXXXXX") || exit 2
err=$(mktemp "${TMPDIR:-/tmp}/guard.XXXXXX") || { rm -f "$out"; exit 2; }
trap 'rm -f "$out" "$err"' EXIT

if [ $# -gt 0 ]; then
        "$@" 2>&1 | "$CREDBROKER" redact >"$out" 2>"$err"
        rc=${PIPESTATUS[1]}
else
        "$CREDBROKER" redact >"$out" 2>"$err"
        rc=$?
fi

case "$rc" in
0)
        cat "$out"
        exit 0
        ;;
1)
        names=$(sed -n 's/^credbroker: redacted: //p' "$err" | tail -n 1)
        notice="[tool output withheld by credbroker: it contained a live credential ($names); the operator has been alerted]"
        echo "tool-output-guard: LEAK in tool output: $names" >&2
        if [ -n "${GUARD_ALERT_CMD:-}" ]; then
                printf '%s\n' "$notice" | sh -c "$GUARD_ALERT_CMD" >&2 || true
        fi
        if [ "$redacted" = 1 ]; then
                cat "$out"
        else
                printf '%s\n' "$notice"
        fi
        exit 3
        ;;
*)
        echo "tool-output-guard: the leak scanner failed (credbroker redact exit $rc): $(tail -n 1 "$err")" >&2
        printf '%s\n' "[tool output withheld: the credential leak check could not run]"
        exit 2
        ;;
esac
