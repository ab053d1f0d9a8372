#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A FIFO or a symlink at the audit-log path (issue 15 item 5): at start the
# daemon refuses it at once with a clear error (never hangs); on SIGHUP it
# keeps writing the old file and keeps serving (the reopen never blocks the
# daemon-wide lock).  Legitimate rotation (mv + SIGHUP) first.
. "$(dirname "$0")/state-lib.sh"
SECRETS="api"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
V1="sk-audit-one-$(rnd)"
R=$T/run A=$T/audit.log

# Legitimate: start, serve, rotate the log with mv + SIGHUP, serve, both files verify.
start_daemon A "$T/state" "$R" --audit-log "$A" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
printf '%s' "$V1" | admin "$R" put api >/dev/null || bad "put api"
expect "legitimate: served" "200 $V1" "$(fetch "$R" api)"
mv "$A" "$A.1"
kill -HUP "$PID_A"; sleep 0.5
expect "legitimate: served after a log rotation" "200 $V1" "$(fetch "$R" api)"
[ -s "$A" ] && ok "legitimate: SIGHUP opened a new log" || bad "legitimate: no new log after SIGHUP"

# Attack on SIGHUP: the new path is a FIFO (no reader), then a FIFO with a reader, then a symlink.
for kind in fifo fifo-read symlink; do
        mv "$A" "$A.$kind.old" 2>/dev/null; rm -f "$A"
        case $kind in
        fifo) mkfifo -m 0600 "$A" ;;
        fifo-read) mkfifo -m 0600 "$A"; (exec 3<>"$A"; sleep 5) & PIDS="$PIDS $!" ;;
        symlink) ln -s "$T/elsewhere.log" "$A" ;;
        esac
        before=$(wc -l <"$A.$kind.old" 2>/dev/null || echo 0)
        kill -HUP "$PID_A"; sleep 0.3
        out=$(timeout 5 bash -c "$(declare -f fetch as); T=$T U1=$U1 fetch $R api")
        expect "SIGHUP with a $kind at the audit path: still serving" "200 $V1" "$out"
        expect "...the daemon says why" "NOT reopened" "$(tail -3 "$T/daemon-A.out")"
        [ -e "$T/elsewhere.log" ] && bad "...a file was created through the symlink" || ok "...nothing written through a symlink"
        rm -f "$A"
        mv "$A.$kind.old" "$A" 2>/dev/null
done
stop_daemon A

# Attack at start: a FIFO (with and without a reader) or a symlink at the path: refused at once.
for kind in fifo fifo-read symlink; do
        mv "$A" "$A.keep"
        case $kind in
        fifo) mkfifo -m 0600 "$A" ;;
        fifo-read) mkfifo -m 0600 "$A"; (exec 3<>"$A"; sleep 5) & PIDS="$PIDS $!" ;;
        symlink) ln -s "$A.keep" "$A" ;;
        esac
        t0=$SECONDS
        timeout 10 "$DAEMON" --state-dir "$T/state" --run-dir "$R" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                --audit-log "$A" >"$T/start-$kind.out" 2>&1 &
        p=$!; PIDS="$PIDS $p"
        for _ in $(seq 100); do kill -0 $p 2>/dev/null || break; sleep 0.05; done
        if kill -0 $p 2>/dev/null; then bad "start with a $kind at the audit path: still running after 5 s (hung or serving)"; kill $p; else ok "start with a $kind at the audit path: refused at once"; fi
        expect "...saying why" "refusing it" "$(cat "$T/start-$kind.out")"
        rm -f "$A"; mv "$A.keep" "$A"
done
start_daemon A "$T/state" "$R" --audit-log "$A" || bad "legitimate: restart with the regular file"
expect "legitimate: served again" "200 $V1" "$(fetch "$R" api)"
stop_daemon A
finish
