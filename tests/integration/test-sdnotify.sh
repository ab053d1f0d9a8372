#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# credbrokerd's systemd protocol (libsystemd's sd_notify) without systemd:
# a datagram socket as $NOTIFY_SOCKET (a path, then an abstract name)
# records what the daemon says: READY=1 and STATUS= once it serves,
# WATCHDOG=1 every half WATCHDOG_USEC (1 s and 3 s: neither faster nor
# slower), RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM; a
# WATCHDOG_PID naming another process turns the watchdog off.  And the
# stderr line format: RFC 3339 time, pid, level; journal priority prefixes
# when $JOURNAL_STREAM names stderr.  Exits 77 without python3.
set -uo pipefail
DAEMON=${CREDBROKERD:?} CLI=${CREDBROKER_CLI:?}
[ -x /usr/bin/python3 ] || { echo "SKIP: missing prerequisite: /usr/bin/python3"; exit 77; }
T=$(mktemp -d /tmp/cbn-test.XXXXXX)
PID='' LPID=''
cleanup() { for p in $PID $LPID; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
printf '{"admins":{"uids":[0]}}' >"$T/policy.json"
chmod 0644 "$T/policy.json"
listen() { # listen ADDR: record datagrams, one per line ("|" for newlines); with times in notes.t
        : >"$T/notes.t"
        /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = sys.argv[1]
s.bind("\0" + a[1:] if a.startswith("@") else a)
print("bound", flush=True)
t = open(sys.argv[2], "a")
while True:
    d = s.recv(4096).decode().replace("\n", "|")
    print(d, flush=True)
    t.write("%.3f %s\n" % (time.monotonic(), d)); t.flush()' "$1" "$T/notes.t" >"$T/notes" &
        LPID=$!
        for _ in $(seq 50); do grep -q bound "$T/notes" && return; sleep 0.1; done
}
# gaps: the seconds between consecutive WATCHDOG=1 datagrams, one a line.
gaps() { awk '$2 == "WATCHDOG=1" { if (p != "") printf "%.3f\n", $1 - p; p = $1 }' "$T/notes.t"; }
start() { # start [ENV...]
        env "$@" "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" \
                --unlock "keyfile:$T/key" 2>"$T/err" &
        PID=$!
}
waitfor() { for _ in $(seq 400); do grep -q -- "$1" "$T/notes" && return 0; sleep 0.05; done; return 1; } # up to 20 s: a loaded CI machine

listen "$T/notify.sock"
start NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1500000
waitfor 'READY=1' && ok "READY=1 once serving ($(grep -m1 READY "$T/notes"))" || bad "no READY=1: $(cat "$T/notes" "$T/err")"
grep -q '^READY=1|STATUS=serving 0 secrets$' "$T/notes" && ok "STATUS= with READY=1" || bad "no STATUS=: $(head -n 3 "$T/notes")"
[ -S "$T/run/admin.sock" ] && ok "the sockets exist when READY=1 arrives" || bad "READY before the sockets"
sleep 2.2
n=$(grep -c '^WATCHDOG=1$' "$T/notes")
[ "$n" -ge 2 ] && ok "WATCHDOG=1 pings ($n in about 2.2 s)" || bad "watchdog: $n pings"
kill -HUP $PID
waitfor 'RELOADING=1' && sleep 0.3 && [ "$(grep -c '^READY=1' "$T/notes")" -ge 2 ] &&
        ok "SIGHUP: RELOADING=1, then READY=1" || bad "reload notifications: $(tr '\n' ' ' <"$T/notes")"
kill $PID; wait $PID; PID=''
waitfor 'STOPPING=1' && ok "SIGTERM: STOPPING=1" || bad "no STOPPING=1"
l=$(head -n 1 "$T/err")
[[ $l =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\ credbrokerd\[[0-9]+\]:\ info:\  ]] &&
        ok "stderr: RFC 3339 time, pid, level: $l" || bad "stderr line: $l"
kill $LPID; wait $LPID 2>/dev/null
# Every line of that run, and a refused command line: one stamped line each.
. "$(dirname "$0")/log-lines.sh"
: >"$T/bad.err"
for a in --bogus --state-dir extra; do "$DAEMON" $a 2>>"$T/bad.err"; done
bl=$(log_lines_bad "$T/err" "$T/bad.err")
[ -z "$bl" ] && [ "$(grep -c "see 'credbrokerd --help'" "$T/bad.err")" = 3 ] &&
        ok "every stderr line stamped, bad command lines included" || bad "unstamped stderr lines: $bl"

# Half the interval systemd asked for: 1 s gives a ping every 0.5 s (a
# 1-s housekeeping tick alone would let a 1-s watchdog expire), 3 s every
# 1.5 s (not every tick).  The median gap, so that a loaded machine's
# occasional stall does not decide.
for w in 1000000:0.35:0.75:3.2 3000000:1.3:1.9:6.5; do
        IFS=: read -r usec lo hi secs <<<"$w"
        rm -f "$T/notify.sock"
        listen "$T/notify.sock"
        start NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=$usec
        waitfor 'READY=1' || bad "no READY=1 (WATCHDOG_USEC=$usec)"
        sleep "$secs"
        kill $PID; wait $PID; PID=''
        kill $LPID; wait $LPID 2>/dev/null; LPID=''
        g=$(gaps | tr '\n' ' ')
        med=$(gaps | sort -n | awk '{ v[NR] = $1 } END { if (NR >= 3) print v[int((NR + 1) / 2)] }')
        [ -n "$med" ] && awk -v m="$med" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(m >= lo && m <= hi) }' &&
                ok "WATCHDOG_USEC=$usec: pings every half interval (median gap $med s of: $g)" ||
                bad "WATCHDOG_USEC=$usec: median gap between pings '${med:-none}' s (of: $g), not within $lo..$hi"
done

# An abstract socket; WATCHDOG_PID of another process: no watchdog.
listen "@cbn-$$"
start NOTIFY_SOCKET="@cbn-$$" WATCHDOG_USEC=500000 WATCHDOG_PID=1
waitfor 'READY=1' && ok "abstract NOTIFY_SOCKET" || bad "abstract socket: $(cat "$T/notes" "$T/err")"
sleep 1.5
grep -q WATCHDOG "$T/notes" && bad "watchdog pinged for another WATCHDOG_PID" || ok "WATCHDOG_PID of another process: no pings"
kill $PID; wait $PID; PID=''
kill $LPID; wait $LPID 2>/dev/null; LPID=''

# Under the journal: stderr is the stream $JOURNAL_STREAM names (here a
# file: its device and inode), lines carry "<N>" priorities instead.
: >"$T/journal"
js=$(stat -c '%d:%i' "$T/journal")
env JOURNAL_STREAM="$js" "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" \
        --unlock "keyfile:$T/key" 2>>"$T/journal" &
PID=$!
for _ in $(seq 50); do [ -s "$T/journal" ] && break; sleep 0.1; done
kill $PID; wait $PID; PID=''
[[ $(head -n 1 "$T/journal") == "<6>serving "* ]] && ok "journal: priority prefix, no time stamp" ||
        bad "journal line: $(head -n 1 "$T/journal")"
# libmicrohttpd's own messages (here: 60 requests with a 40 KB header, each
# answered 431 and reported by MHD): stamped "http:" lines, at most 10 a
# second, then one line counting those left out.
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" 2>"$T/mhd.err" &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/tools.sock" ] && break; sleep 0.1; done
big() { /usr/bin/python3 - "$T/run/tools.sock" "$1" <<'PY'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
    try:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"); s.recv(1000)
    except OSError:
        pass
    s.close()
PY
}
big 60
sleep 1.1
big 1
sleep 0.3
kill $PID; wait $PID; PID=''
n=$(grep -c 'Z credbrokerd\[[0-9]*\]: warning: http: ' "$T/mhd.err")
left=$(sed -n 's/.*warning: http: \([0-9]*\) more message(s) of libmicrohttpd left out.*/\1/p' "$T/mhd.err" | head -n 1)
bl=$(log_lines_bad "$T/mhd.err")
[ -z "$bl" ] && [ "$n" -ge 2 ] && [ "$n" -lt 40 ] && [ -n "$left" ] &&
        ok "libmicrohttpd's messages: stamped, rate-limited ($n lines, $left left out)" ||
        bad "libmicrohttpd's messages: $n lines, left out '${left}', unstamped: $(head -n 3 <<<"$bl")"
echo "$fails failure(s)"
[ "$fails" = 0 ]
