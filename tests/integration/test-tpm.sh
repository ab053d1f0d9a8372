#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The tpm2 unlock providers end to end against real software TPMs (swtpm on
# free loopback ports), the real daemon and the CLI: init with and without
# PCRs, restart and serve, refusals (PCRs changed, another TPM, TPM absent,
# rolled-back store, tpm2+keyfile missing a part), crash between a commit
# and the counter increment, and 200 unlock cycles without leaking TPM
# objects or sessions.  Exit 77 only when swtpm is absent.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
WRITER=${CB_STORE_WRITER:?}
command -v swtpm >/dev/null || { echo "SKIP: missing prerequisite: swtpm (Debian package swtpm)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run the tool under another uid)"; exit 77; }

T=$(mktemp -d /tmp/cb-tpm-test.XXXXXX)
chmod 0755 "$T"
PID= SW_A= SW_B=
cleanup() {
        for p in $PID $SW_A $SW_B; do kill "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
for t in tpm2_pcrextend tpm2_getcap setpriv; do
        command -v $t >/dev/null || { bad "missing $t (tpm2-tools / util-linux are CI dependencies)"; exit 1; }
done

# Two consecutive free loopback ports (server, control).
free_ports() {
        /usr/bin/python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]
    if p >= 65535: s.close(); continue
    t = socket.socket()
    try:
        t.bind(('127.0.0.1', p + 1))
    except OSError:
        s.close(); continue
    s.close(); t.close(); print(p); break
PY
}
# start_swtpm STATE_DIR PORT -> pid on stdout (waits until it answers)
start_swtpm() {
        mkdir -p "$1"
        swtpm socket --tpm2 --server type=tcp,port=$2,bindaddr=127.0.0.1 \
                --ctrl type=tcp,port=$(($2 + 1)),bindaddr=127.0.0.1 \
                --flags not-need-init,startup-clear --tpmstate dir="$1" >>"$T/swtpm.log" 2>&1 &
        local pid=$!
        for _ in $(seq 50); do
                if TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$2 tpm2_getcap properties-fixed >/dev/null 2>&1; then
                        echo $pid; return 0
                fi
                sleep 0.1
        done
        echo $pid; return 1
}
PA=$(free_ports); SW_A=$(start_swtpm "$T/tpmA" "$PA") || { bad "swtpm A did not start"; exit 1; }
PB=$(free_ports); SW_B=$(start_swtpm "$T/tpmB" "$PB") || { bad "swtpm B did not start"; exit 1; }
TA=swtpm:host=127.0.0.1,port=$PA TB=swtpm:host=127.0.0.1,port=$PB
PDEAD=$(free_ports) # nothing listens there
count() { TPM2TOOLS_TCTI=$1 tpm2_getcap "$2" | grep -c '^- '; }

# --- the operator report
rep=$("$CLI" tpm --tpm2-tcti "$TA" --json)
expect "tpm report: present" '"present":true' "$rep"
expect "tpm report: sha256 bank" '"alg":"sha256"' "$rep"
expect "tpm report: software TPM recognised" '"software_tpm":true' "$rep"
rep=$("$CLI" tpm --tpm2-tcti "swtpm:host=127.0.0.1,port=$PDEAD" --json); rc=$?
expect "tpm report: absent TPM" '"present":false' "$rep"
[ $rc = 8 ] && ok "tpm report exits 8 without a TPM" || bad "tpm report exit $rc without a TPM"

# --- init: tpm2 without PCRs, with PCR 7, tpm2+keyfile
transient0=$(count "$TA" handles-transient) sessions0=$(count "$TA" handles-loaded-session)
expect "init tpm2" "created store" "$("$CLI" init --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "init tpm2 with PCRs 0,7" "created store" \
        "$("$CLI" init --state-dir "$T/sp" --unlock tpm2 --tpm2-tcti "$TA" --tpm2-pcrs 0,7 2>&1)"
expect "init tpm2+keyfile" "created store" \
        "$("$CLI" init --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" --tpm2-tcti "$TA" 2>&1)"
expect "init refuses a bad PCR list" "PCR numbers 0..23" \
        "$("$CLI" init --state-dir "$T/sx" --unlock tpm2 --tpm2-tcti "$TA" --tpm2-pcrs 7,24 2>&1)"
expect "init refuses PCRs for a non-TPM provider" "needs --unlock tpm2" \
        "$("$CLI" init --state-dir "$T/sy" --unlock "keyfile:$T/k2" --tpm2-pcrs 7 2>&1)"

# --- daemon: serve, restart, serve again
U=61400
cat >"$T/policy.json" <<JSON
{ "clients": {"tool": {"uid": $U}},
  "grants": [{"client": "tool", "secret": "demo", "use": ["redeem"]}],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
start_daemon() { # STATE UNLOCK TCTI
        rm -rf "$T/run"
        "$DAEMON" --state-dir "$1" --run-dir "$T/run" --policy "$T/policy.json" --unlock "$2" --tpm2-tcti "$3" \
                >"$T/daemon.out" 2>&1 &
        PID=$!
        for _ in $(seq 100); do
                [ -S "$T/run/admin.sock" ] && return 0
                kill -0 $PID 2>/dev/null || { wait $PID; PID=; return 1; }
                sleep 0.1
        done
        return 1
}
stop_daemon() { [ -n "$PID" ] && { kill -TERM "$PID"; wait "$PID"; PID=; }; }
put() { printf '%s' "$2" | "$CLI" --admin-socket "$T/run/admin.sock" put "$1" >/dev/null; }
fetch() { setpriv --reuid $U --regid $U --clear-groups "$CLI" --socket "$T/run/tools.sock" fetch "$1" 2>&1; }

start_daemon "$T/s" tpm2 "$TA" || bad "daemon starts on a tpm2 store: $(cat "$T/daemon.out")"
put demo "value-one" && ok "put over the admin socket" || bad "put"
expect "served before restart" "value-one" "$(fetch demo)"
stop_daemon
start_daemon "$T/s" tpm2 "$TA" || bad "daemon restarts on a tpm2 store: $(cat "$T/daemon.out")"
expect "served after restart (unlocked through the TPM)" "value-one" "$(fetch demo)"
stop_daemon
expect "daemon refuses --tpm2-tcti with a non-TPM unlock" "needs --unlock tpm2" \
        "$("$DAEMON" --state-dir "$T/s" --run-dir "$T/run" --policy "$T/policy.json" --unlock keyfile:/x \
           --tpm2-tcti "$TA" 2>&1)"

# --- PCR policy: ok, then PCR 7 extended -> refused, saying so
expect "PCR-bound store opens" "ok: store" "$("$CLI" check --state-dir "$T/sp" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
TPM2TOOLS_TCTI=$TA tpm2_pcrextend 7:sha256=$(printf '%064d' 1) || bad "tpm2_pcrextend"
out=$("$CLI" check --state-dir "$T/sp" --unlock tpm2 --tpm2-tcti "$TA" 2>&1); rc=$?
expect "PCR 7 extended: refused" "PCRs changed" "$out"
[ $rc != 0 ] && ok "PCR refusal exits non-zero ($rc)" || bad "PCR refusal exit 0"
start_daemon "$T/sp" tpm2 "$TA" && bad "daemon started on a store whose PCRs changed" ||
        expect "daemon refuses: PCRs changed" "PCRs changed" "$(cat "$T/daemon.out")"
# The store without a PCR policy is unaffected by the PCR change.
expect "store without PCRs still opens" "ok: store" "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

# --- another TPM, no TPM
expect "another swtpm state: refused" "belongs to another TPM" \
        "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TB" 2>&1)"
expect "TPM absent: refused" "TPM absent" \
        "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "swtpm:host=127.0.0.1,port=$PDEAD" 2>&1)"
start_daemon "$T/s" tpm2 "swtpm:host=127.0.0.1,port=$PDEAD" && bad "daemon started without its TPM" ||
        expect "daemon refuses: TPM absent" "TPM absent" "$(cat "$T/daemon.out")"

# --- tpm2+keyfile needs both parts
expect "tpm2+keyfile with both parts" "ok: store" \
        "$("$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" --tpm2-tcti "$TA" 2>&1)"
mv "$T/key" "$T/key.away"
expect "tpm2+keyfile without the key file: refused" "key file" \
        "$("$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" --tpm2-tcti "$TA" 2>&1)"
head -c 32 /dev/urandom >"$T/other.key"; chmod 0400 "$T/other.key"
expect "tpm2+keyfile with another key file: refused" "wrong key" \
        "$("$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/other.key" --tpm2-tcti "$TA" 2>&1)"
mv "$T/key.away" "$T/key"
expect "tpm2+keyfile without the TPM: refused" "TPM absent" \
        "$("$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" \
           --tpm2-tcti "swtpm:host=127.0.0.1,port=$PDEAD" 2>&1)"
expect "tpm2+keyfile on another TPM: refused" "belongs to another TPM" \
        "$("$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" --tpm2-tcti "$TB" 2>&1)"
expect "tpm2+keyfile store, TPM alone: refused" "no 'tpm2' unlock slot" \
        "$("$CLI" check --state-dir "$T/sk" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

# --- anti-rollback: an older copy restored is refused
cp -a "$T/s" "$T/s.backup"
gen_old=$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" --json | sed 's/.*"generation":\([0-9]*\).*/\1/')
start_daemon "$T/s" tpm2 "$TA" || bad "daemon start for the rollback test"
put demo "value-two" && put other "value-x" || bad "puts before the rollback"
stop_daemon
rm -rf "$T/s.new"; mv "$T/s" "$T/s.new"; cp -a "$T/s.backup" "$T/s"
out=$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1); rc=$?
expect "older copy restored: refused" "store rolled back: generation $gen_old < counter $((gen_old + 2))" "$out"
[ $rc = 4 ] && ok "rollback exits 4" || bad "rollback exit $rc"
start_daemon "$T/s" tpm2 "$TA" && bad "daemon started on a rolled-back store" ||
        expect "daemon refuses a rolled-back store" "store rolled back" "$(cat "$T/daemon.out")"
# The current copy still opens; the operator's recovery for a deliberate restore works.
expect "the current copy opens" "generation $((gen_old + 2))" \
        "$("$CLI" check --state-dir "$T/s.new" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "accept-rollback on the restored copy" "accepted at generation $((gen_old + 2))" \
        "$("$CLI" tpm accept-rollback --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "accept-rollback --json again: nothing to accept" "{\"state_dir\":\"$T/s\",\"accepted\":false,\"generation\":$((gen_old + 2))}" \
        "$("$CLI" tpm accept-rollback --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" --json 2>&1)"
start_daemon "$T/s" tpm2 "$TA" || bad "daemon on the accepted copy: $(cat "$T/daemon.out")"
expect "accepted copy serves the old value" "value-one" "$(fetch demo)"
put demo "value-three" || bad "put after accept-rollback"
stop_daemon
expect "the newer copy is now the rolled-back one" "store rolled back" \
        "$("$CLI" check --state-dir "$T/s.new" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

# --- crash between the header commit and the counter increment: the TPM
# goes away while the daemon writes; the write is durable, the counter
# behind.  Further writes are refused while the TPM stays away; once it is
# back, the next write catches the counter up and succeeds in the same
# daemon (no restart); a copy from the window is then refused.
start_daemon "$T/s" tpm2 "$TA" || bad "daemon start for the crash-window test"
kill "$SW_A"; wait "$SW_A" 2>/dev/null
put demo "value-four" && ok "write durable without the TPM (counter left behind)" || bad "put with the TPM gone"
out=$(printf 'x' | "$CLI" --admin-socket "$T/run/admin.sock" put demo 2>&1)
expect "a write while the counter is behind and the TPM gone: refused" \
        "the anti-rollback counter is still behind the last commit" "$out"
expect "the refused write was not applied" "value-four" "$(fetch demo)"
cp -a "$T/s" "$T/s.window"
SW_A=$(start_swtpm "$T/tpmA" "$PA") || bad "swtpm A restart"
put demo "value-five" && ok "TPM back: the next write catches the counter up, without a daemon restart" ||
        bad "put after the TPM came back (daemon still read-only?)"
expect "the write after the catch-up is served" "value-five" "$(fetch demo)"
put demo "value-six" && ok "and the one after it" || bad "second put after the TPM came back"
stop_daemon
gen_now=$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" --json | sed 's/.*"generation":\([0-9]*\).*/\1/')
expect "the counter caught up: the copy from the window is refused" \
        "store rolled back: generation $((gen_now - 2)) < counter $gen_now" \
        "$("$CLI" check --state-dir "$T/s.window" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "reopen after the crash window: no false rollback" "ok: store" \
        "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
start_daemon "$T/s" tpm2 "$TA" || bad "daemon after the crash window: $(cat "$T/daemon.out")"
expect "the last write is served after a restart" "value-six" "$(fetch demo)"
stop_daemon

# --- a real crash (SIGKILL) right after the header commit, before the
# counter increment: the next open catches the counter up, and from then on
# the copy taken before the crash is the rolled-back one.
cp -a "$T/s" "$T/s.precrash"
gen_pre=$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" --json | sed 's/.*"generation":\([0-9]*\).*/\1/')
CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA CB_CRASH_AT=header-committed "$WRITER" "$T/s" - 1 1 put >"$T/writer.out" 2>&1
rc=$?
[ $rc = 137 ] && ok "writer killed between the header commit and the counter increment" ||
        bad "writer exit $rc (wanted SIGKILL): $(cat "$T/writer.out")"
expect "reopen after the crash: no false rollback" "generation $((gen_pre + 1))" \
        "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "the counter caught up: the pre-crash copy is refused" \
        "store rolled back: generation $gen_pre < counter $((gen_pre + 1))" \
        "$("$CLI" check --state-dir "$T/s.precrash" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
# ... and a crash before the header commit: the open that rolls the tail
# forward commits it and advances the counter.
CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA CB_CRASH_AT=log-synced "$WRITER" "$T/s" - 2 1 put >"$T/writer.out" 2>&1
expect "roll-forward after a crash before the commit" "generation $((gen_pre + 2))" \
        "$("$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
cp -a "$T/s" "$T/s.rolled"
CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA "$WRITER" "$T/s" - 3 1 put >"$T/writer.out" 2>&1 || bad "writer: $(cat "$T/writer.out")"
expect "the counter followed the rolled-forward commit" "store rolled back: generation $((gen_pre + 2)) <" \
        "$("$CLI" check --state-dir "$T/s.rolled" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

# --- 200 unlock cycles (plus refused ones) leave no TPM object or session
transient0=$(count "$TA" handles-transient) sessions0=$(count "$TA" handles-loaded-session)
okc=0
for _ in $(seq 200); do
        "$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TA" >/dev/null 2>&1 && okc=$((okc + 1))
done
[ $okc = 200 ] && ok "200 unlock cycles succeeded" || bad "only $okc of 200 unlock cycles succeeded"
for _ in $(seq 10); do
        "$CLI" check --state-dir "$T/sp" --unlock tpm2 --tpm2-tcti "$TA" >/dev/null 2>&1
        "$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/other.key" --tpm2-tcti "$TA" >/dev/null 2>&1
        "$CLI" check --state-dir "$T/sk" --unlock "tpm2+keyfile:$T/key" --tpm2-tcti "$TA" >/dev/null 2>&1
done
"$CLI" check --state-dir "$T/s" --unlock tpm2 --tpm2-tcti "$TB" >/dev/null 2>&1
t1=$(count "$TA" handles-transient) s1=$(count "$TA" handles-loaded-session)
[ "$t1" = "$transient0" ] && ok "transient objects unchanged after the cycles ($t1)" ||
        bad "transient objects $transient0 -> $t1"
[ "$s1" = "$sessions0" ] && ok "loaded sessions unchanged after the cycles ($s1)" || bad "sessions $sessions0 -> $s1"
[ "$(count "$TB" handles-transient)" = 0 ] && [ "$(count "$TB" handles-loaded-session)" = 0 ] &&
        ok "refused load on the other TPM left nothing behind" || bad "the other TPM kept objects"

# --- the NV index undefined and redefined at the same handle (the owner
# authorization is empty, so any local user of the TPM can do that): an
# ordinary index holding a chosen low value must not let an older copy
# open; a counter defined again starts above every value any counter had.
nvs() { TPM2TOOLS_TCTI=$TA tpm2_getcap handles-nv-index | sed -n 's/^- //p' | sort; }
nv_before=$(nvs)
expect "init a store for the NV redefinition test" "created store" \
        "$("$CLI" init --state-dir "$T/sr" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
IDX=$(comm -13 <(echo "$nv_before") <(nvs))
case "$IDX" in 0x*) ok "the store's NV index: $IDX" ;; *) bad "cannot find the new NV index ('$IDX')" ;; esac
gen_r=$("$CLI" check --state-dir "$T/sr" --unlock tpm2 --tpm2-tcti "$TA" --json | sed 's/.*"generation":\([0-9]*\).*/\1/')
cp -a "$T/sr" "$T/sr.old"
CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA "$WRITER" "$T/sr" - 1 3 put >"$T/writer.out" 2>&1 || bad "writer: $(cat "$T/writer.out")"
expect "NV test: the old copy is rolled back" "store rolled back: generation $gen_r < counter $((gen_r + 3))" \
        "$("$CLI" check --state-dir "$T/sr.old" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
raw=$((16#$(TPM2TOOLS_TCTI=$TA tpm2_nvread "$IDX" -s 8 | od -An -tx1 | tr -d ' \n')))
low=$((raw - 3)) # the raw value that stands for the old copy's generation
TPM2TOOLS_TCTI=$TA tpm2_nvundefine "$IDX" >/dev/null && TPM2TOOLS_TCTI=$TA tpm2_nvdefine "$IDX" -C o -s 8 \
        -a "authread|authwrite|no_da" >/dev/null && printf "$(printf '%016x' "$low" | sed 's/../\\x&/g')" >"$T/nv.bin" &&
        TPM2TOOLS_TCTI=$TA tpm2_nvwrite "$IDX" -i "$T/nv.bin" || bad "redefining $IDX as an ordinary index"
out=$("$CLI" check --state-dir "$T/sr.old" --unlock tpm2 --tpm2-tcti "$TA" 2>&1); rc=$?
expect "ordinary index at the counter's handle: old copy refused" \
        "NV index $(printf '0x%08x' "$IDX") is not this store's anti-rollback counter (undefined and redefined?)" "$out"
[ $rc != 0 ] && ok "refusal exits non-zero ($rc)" || bad "the old copy opened on a redefined NV index"
expect "ordinary index: the current copy is refused too" "is not this store's anti-rollback counter" \
        "$("$CLI" check --state-dir "$T/sr" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
cp "$T/sr.old/header" "$T/sr.old.header"
out=$("$CLI" tpm accept-rollback --state-dir "$T/sr.old" --unlock tpm2 --tpm2-tcti "$TA" 2>&1); rc=$?
expect "accept-rollback cannot adopt a redefined index" "is not this store's anti-rollback counter" "$out"
[ $rc != 0 ] && cmp -s "$T/sr.old.header" "$T/sr.old/header" && ok "accept-rollback refused and left the copy" ||
        bad "accept-rollback on a redefined index: exit $rc, header changed or not"
TPM2TOOLS_TCTI=$TA tpm2_nvundefine "$IDX" >/dev/null && TPM2TOOLS_TCTI=$TA tpm2_nvdefine "$IDX" -C o -s 8 \
        -a "nt=counter|authread|authwrite|no_da" >/dev/null && TPM2TOOLS_TCTI=$TA tpm2_nvincrement "$IDX" ||
        bad "redefining $IDX as a counter"
out=$("$CLI" check --state-dir "$T/sr.old" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)
expect "counter redefined: the old copy is still rolled back" "store rolled back: generation $gen_r < counter" "$out"
TPM2TOOLS_TCTI=$TA tpm2_nvundefine "$IDX" >/dev/null && TPM2TOOLS_TCTI=$TA tpm2_nvdefine "$IDX" -C o -s 8 \
        -a "nt=counter|authread|authwrite|no_da|policywrite" >/dev/null &&
        TPM2TOOLS_TCTI=$TA tpm2_nvincrement "$IDX" || bad "redefining $IDX as a counter with other attributes"
expect "a counter with other attributes is refused" "its attributes differ" \
        "$("$CLI" check --state-dir "$T/sr" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

# --- accept-rollback verifies before it writes: a rolled-back copy that
# opens (every MAC holds) but holds a value that does not decrypt is
# refused and left exactly as it was; the good copy still opens.
gen_of() { "$CLI" check --state-dir "$1" --unlock tpm2 --tpm2-tcti "$TA" --json | sed 's/.*"generation":\([0-9]*\).*/\1/'; }
W() { CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA "$WRITER" "$@" >"$T/writer.out" 2>&1 || bad "writer $*: $(cat "$T/writer.out")"; }
expect "init a store for the accept-rollback tests" "created store" \
        "$("$CLI" init --state-dir "$T/sv" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
W "$T/sv" - 1 2 put
gv=$(gen_of "$T/sv")
cp -a "$T/sv" "$T/sv.bad"
W "$T/sv.bad" - 7 1 forge # (not opened before the good copy moves on: an open would catch the counter up to it)
W "$T/sv" - 3 3 put
expect "forged copy is rolled back" "store rolled back: generation $((gv + 1)) < counter $((gv + 3))" \
        "$("$CLI" check --state-dir "$T/sv.bad" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
cp "$T/sv.bad/header" "$T/sv.bad.header"
out=$("$CLI" tpm accept-rollback --state-dir "$T/sv.bad" --unlock tpm2 --tpm2-tcti "$TA" 2>&1); rc=$?
expect "accept-rollback refuses a copy that fails verification" "integrity error: the key of 's7' version 1 does not unwrap" "$out"
[ $rc != 0 ] && ok "accept-rollback refusal exits non-zero ($rc)" || bad "accept-rollback accepted a bad copy"
cmp -s "$T/sv.bad.header" "$T/sv.bad/header" && ok "the refused copy's header is unchanged" ||
        bad "accept-rollback rewrote the header of a copy that failed verification"
expect "the refused copy is still rolled back" "store rolled back: generation $((gv + 1)) < counter $((gv + 3))" \
        "$("$CLI" check --state-dir "$T/sv.bad" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "the good copy still opens" "ok: store" \
        "$("$CLI" check --state-dir "$T/sv" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "accept-rollback on a store that is not rolled back: nothing to accept" "nothing to accept" \
        "$("$CLI" tpm accept-rollback --state-dir "$T/sv" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
# A rolled-back copy with an interrupted write's tail is refused without
# rolling the tail forward (nothing is written to an older copy); accepted,
# the tail and the raised generation are committed together.
cp -a "$T/sv" "$T/sv.tail"
CB_UNLOCK_SPEC=tpm2 CB_TPM2_TCTI=$TA CB_CRASH_AT=log-synced "$WRITER" "$T/sv.tail" - 20 1 put >"$T/writer.out" 2>&1
W "$T/sv" - 21 2 put
cp "$T/sv.tail/header" "$T/sv.tail.header"
expect "rolled-back copy with a tail: refused at its committed generation" \
        "store rolled back: generation $((gv + 3)) < counter $((gv + 5))" \
        "$("$CLI" check --state-dir "$T/sv.tail" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
cmp -s "$T/sv.tail.header" "$T/sv.tail/header" && ok "the refusal wrote nothing (tail not rolled forward)" ||
        bad "refusing a rolled-back copy changed its header"
expect "accept-rollback of the copy with a tail" "accepted at generation $((gv + 5))" \
        "$("$CLI" tpm accept-rollback --state-dir "$T/sv.tail" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"
expect "accepted copy opens with the tail's secret" "generation $((gv + 5)), 6 secrets" \
        "$("$CLI" check --state-dir "$T/sv.tail" --unlock tpm2 --tpm2-tcti "$TA" 2>&1)"

echo "$fails failure(s)"
[ $fails = 0 ]
