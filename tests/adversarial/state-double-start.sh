#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# One daemon per state dir and per run dir (issue 15 item 1): a second
# credbrokerd on the same state dir (other run dir) or the same run dir
# (other state dir) is refused naming the holder's pid, and touches nothing
# of the first one's (its sockets keep their inodes and keep answering).
# A store changed underneath the running daemon (another writer) is
# refused rather than served stale.
. "$(dirname "$0")/state-lib.sh"
SECRETS="api s0"

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
"$CLI" init --state-dir "$T/state2" --unlock "keyfile:$T/key" >/dev/null || { bad init2; exit 1; }
write_policy "$T/policy.json"
V1="sk-dbl-one-$(rnd)" V2="sk-dbl-two-$(rnd)"

# Legitimate: one daemon serves; a restart of it after it stopped works.
start_daemon A "$T/state" "$T/run1" || { bad "daemon A did not start: $(cat "$T/daemon-A.out")"; finish; }
printf '%s' "$V1" | admin "$T/run1" put api >/dev/null || bad "put api"
expect "legitimate: the daemon serves" "200 $V1" "$(fetch "$T/run1" api)"
stop_daemon A
start_daemon A "$T/state" "$T/run1" || bad "legitimate: a restart after a clean stop is refused: $(tail -2 "$T/daemon-A.out")"
expect "legitimate: the restarted daemon serves" "200 $V1" "$(fetch "$T/run1" api)"
ino_tools=$(stat -c %i "$T/run1/tools.sock") ino_admin=$(stat -c %i "$T/run1/admin.sock")

# Attack 1: a second daemon on the same state dir, another run dir.
start_daemon B "$T/state" "$T/run2"
if ! exited B; then bad "second daemon on the same state dir keeps running"; stop_daemon B; else ok "second daemon on the same state dir exits"; fi
expect "...saying which pid holds it" "in use by another credbrokerd (pid $PID_A)" "$(cat "$T/daemon-B.out")"
[ -e "$T/run2/tools.sock" ] && bad "...but it made sockets" || ok "...before making any socket"

# Attack 2: a second daemon (its own store) on the same run dir.
start_daemon C "$T/state2" "$T/run1"
if ! exited C; then bad "second daemon on the same run dir keeps running"; stop_daemon C; else ok "second daemon on the same run dir exits"; fi
expect "...saying which pid holds it" "in use by another credbrokerd (pid $PID_A)" "$(cat "$T/daemon-C.out")"
[ "$(stat -c %i "$T/run1/tools.sock" 2>/dev/null)" = "$ino_tools" ] && [ "$(stat -c %i "$T/run1/admin.sock" 2>/dev/null)" = "$ino_admin" ] &&
        ok "...and the first one's sockets are untouched" || bad "...the first one's sockets were replaced or removed"
expect "the first daemon still serves" "200 $V1" "$(fetch "$T/run1" api)"

# Attack 2b: the run dir's lock file removed first (write access to the run dir):
# the sockets are still never replaced while a daemon serves them.
rm -f "$T/run1/credbrokerd.lock"
start_daemon F "$T/state2" "$T/run1"
if ! exited F; then bad "with the lock file gone, a second daemon on the run dir keeps running"; stop_daemon F; else ok "with the lock file gone, a second daemon on the run dir exits"; fi
expect "...saying the socket is served" "served by another live process" "$(cat "$T/daemon-F.out")"
[ "$(stat -c %i "$T/run1/tools.sock" 2>/dev/null)" = "$ino_tools" ] && ok "...and the sockets are untouched" || bad "...the sockets were replaced"
expect "the first daemon still serves" "200 $V1" "$(fetch "$T/run1" api)"

# Attack 3: two more starts at once, racing (no window between check and lock).
for r in 3 4; do
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run$r" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                >>"$T/daemon-race$r.out" 2>&1 &
        PIDS="$PIDS $!"
done
sleep 3
[ -e "$T/run3/tools.sock" ] || [ -e "$T/run4/tools.sock" ] && bad "a racing second daemon serves" ||
        ok "racing second daemons both refused"
expect "the first daemon still serves" "200 $V1" "$(fetch "$T/run1" api)"

# Attack 4: another writer changes the store under the running daemon (here a
# direct store writer, as a second daemon was): the daemon must not go on
# serving its stale copy.
W=${CB_STORE_WRITER:-}
if [ -x "$W" ]; then
        "$W" "$T/state" "$T/key" 0 1 put >/dev/null 2>&1 || bad "store-writer put s0"
        stop_daemon A
        start_daemon A "$T/state" "$T/run1" || bad "restart"
        before=$(fetch "$T/run1" s0)
        expect "legitimate: s0 served" "200 " "$before"
        "$W" "$T/state" "$T/key" 50 1 put >/dev/null 2>&1 || bad "store-writer second put s0"
        after=$(fetch "$T/run1" s0)
        [ "$after" = "$before" ] && bad "stale value served after the store changed underneath: $after" ||
                ok "the daemon does not serve the stale copy"
        expect "...and says why" "changed by another process" "$after"
else
        echo "SKIP part: CB_STORE_WRITER not set (store-writer)"
fi
# File modes inside the state dir: a header or log others can read is refused at start.
stop_daemon A
for f in header "$(cd "$T/state" && ls log-* | head -1)"; do
        chmod 0644 "$T/state/$f"
        start_daemon M "$T/state" "$T/run1" && { bad "a $f of mode 0644 is accepted"; stop_daemon M; } ||
                expect "a ${f%%-*} of mode 0644 is refused" "mode 0600" "$(cat "$T/daemon-M.out")"
        chmod 0600 "$T/state/$f"
        : >"$T/daemon-M.out"
done
start_daemon A "$T/state" "$T/run1" && ok "legitimate: mode 0600 again: it starts" || bad "restart after chmod 0600"
finish
