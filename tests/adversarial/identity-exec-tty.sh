#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `credbroker exec` masks what the command prints; the command must have no
# other way to the caller's terminal.  An agent harness that runs tools on a
# pty (script(1) here) reads the terminal: the command writing its value to
# /dev/tty, or to its stdin when stdin is the terminal, must not reach it.
# Legitimate path first: stdout is masked, and input typed at the terminal
# still reaches the command (relayed).
. "$(dirname "$0")/identity-lib.sh"
U=61560
command -v script >/dev/null || { echo "SKIP: missing prerequisite: script (bsdutils)"; exit 77; }
POLICY='{ "clients": { "agent": {"uid": '$U'} },
  "grants": [ {"client": "agent", "secret": "known", "use": ["redeem"], "max_ttl": 600} ], "admins": {"uids": [0]} }'
start_daemon
VAL=tty-value-0123456789abcdef
printf %s "$VAL" | timeout 30 "$CLI" --admin-socket "$AS" put known >/dev/null || { bad "put known"; finish; }
pty() { # CMD (run by `exec --env V=known -- sh -c CMD` on a pty as uid U); stdin of the harness from $IN
        printf '%s' "${IN:-}" | run_as $U script -q -e -c "'$CLI' --socket '$TS' exec --env V=known -- sh -c '$1'" /dev/null 2>&1
}
out=$(pty 'echo "stdout: $V"')
expect "legitimate: stdout on a pty is masked" "stdout: [REDACTED:known]" "$out"
out=$(IN=$'typed-line\n' pty 'read x; echo "got: $x"')
expect "legitimate: a line typed at the terminal reaches the command" "got: typed-line" "$out"
out=$(pty 'echo "devtty: $V" >/dev/tty; echo done')
case "$out" in *"$VAL"*) bad "the value reached the terminal through /dev/tty" ;; *) ok "nothing reached the terminal through /dev/tty" ;; esac
out=$(pty 'echo "stdin: $V" >&0; echo done')
case "$out" in *"$VAL"*) bad "the value reached the terminal through stdin" ;; *) ok "nothing reached the terminal through stdin" ;; esac
finish
