#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The libraries the CLI loads on first use (client/curl_lazy.c: libcurl;
# keys/tss2_lazy.c: tpm2-tss) when they are absent: each command that needs
# one fails with a message naming it and its Debian package, and one that
# does not need it still works.  Absent for real: in a private mount
# namespace the library directory is overlaid with whiteouts for the
# soname's files (nothing mocks the library).  Each case after its control
# with the library present.  Needs root, unshare, overlayfs, mknod,
# ldconfig; exits 77 naming what is missing.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (mount namespaces)"; exit 77; }
for t in unshare mount mknod ldconfig timeout; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
T=$(mktemp -d /var/tmp/cblazy.XXXXXX)
chmod 0755 "$T"
PID=''
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# libdir SONAME: the directory ld.so's cache gives for it ("" if none)
libdir() { ldconfig -p | awk -v s="$1" '$1 == s && /x86-64|x86_64|64bit/ {print $NF; exit}' | xargs -r dirname; }
# without SONAME... -- CMD...: CMD where each SONAME's files (the soname,
# what it links to, its versions) are whited out of its directory.
cat >"$T/without.sh" <<'EOF'
set -e
W=$(mktemp -d); mount -t tmpfs t "$W"
declare -A dirs
while [ "$1" != -- ]; do
        f=$(ldconfig -p | awk -v s="$1" '$1 == s {print $NF; exit}'); d=$(dirname "$f")
        mkdir -p "$W/$d/u" "$W/$d/w"; dirs[$d]=1
        for x in "$d/$1"*; do mknod "$W/$d/u/$(basename "$x")" c 0 0; done
        shift
done
shift
for d in "${!dirs[@]}"; do mount -t overlay o -o "lowerdir=$d,upperdir=$W/$d/u,workdir=$W/$d/w" "$d"; done
exec "$@"
EOF
without() { unshare -m --propagation private bash "$T/without.sh" "$@"; }

[ -n "$(libdir libcurl.so.4)" ] || { echo "SKIP: missing prerequisite: libcurl.so.4 (Debian: libcurl4)"; exit 77; }
o=$(without libcurl.so.4 -- /bin/sh -c 'ls "$(dirname "$(ldconfig -p | awk "\$1 == \"libcurl.so.4\" {print \$NF; exit}")")" | grep -c "^libcurl\.so\.4"' 2>&1)
[ "$o" = 0 ] && ok "control: the overlay hides libcurl.so.4's files" || bad "the overlay did not hide libcurl.so.4: $o"

# ---- libcurl: the broker API needs it; a sandbox without --proxy does not ----
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
printf '{ "clients": { "me": {"uid": 0} }, "grants": [], "admins": {"uids": [0]} }\n' >"$T/policy.json"
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$T/run/sandbox.sock" ] && break; sleep 0.05; done
[ -S "$T/run/admin.sock" ] || { bad "the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
export CREDBROKER_SOCKET=$T/run/tools.sock CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock
o=$(timeout 30 "$CLI" status 2>&1); rc=$?
[ $rc = 0 ] && ok "control: credbroker status with libcurl" || bad "control: status: exit $rc: $o"
o=$(without libcurl.so.4 -- timeout 30 "$CLI" status 2>&1); rc=$?
case "$o" in
*"libcurl (libcurl.so.4"*"could not be loaded"*"libcurl4"*) [ $rc != 0 ] && ok "status without libcurl: exit $rc, '$o'" ||
        bad "status without libcurl: exit 0: $o" ;;
*) bad "status without libcurl: exit $rc, no clear message: $o" ;;
esac
if [ -x /usr/bin/bwrap ] && [ "$(uname -m)" = x86_64 ]; then
        mkdir -p "$T/work"
        o=$(cd "$T/work" && without libcurl.so.4 -- timeout 30 "$CLI" sandbox -- /bin/echo inside 2>&1); rc=$?
        [ $rc = 0 ] && [ "$o" = inside ] && ok "a sandbox without --proxy/--env runs without libcurl" ||
                bad "sandbox without libcurl: exit $rc: $o"
        o=$(cd "$T/work" && without libcurl.so.4 -- timeout 30 "$CLI" sandbox --proxy x=env:X -- /bin/echo inside 2>&1); rc=$?
        case "$o" in
        *inside*) bad "sandbox --proxy without libcurl ran CMD: $o" ;;
        *"libcurl (libcurl.so.4"*"could not be loaded"*) [ $rc != 0 ] && ok "sandbox --proxy without libcurl: exit $rc, CMD not run, the message names libcurl" ||
                bad "sandbox --proxy without libcurl: exit 0: $o" ;;
        *) bad "sandbox --proxy without libcurl: exit $rc, no clear message: $o" ;;
        esac
else
        echo "note: no bwrap (or not x86_64): the sandbox cases not tried"
fi

# ---- tpm2-tss: the tpm2 unlock provider needs it ------------------------------
if [ -z "$(libdir libtss2-esys.so.0)" ]; then
        echo "note: tpm2-tss is not installed here (libtss2-esys.so.0): the TPM cases need it present for their control"
else
        o=$(timeout 30 "$CLI" init --state-dir "$T/st1" --unlock tpm2 --tpm2-tcti swtpm:host=127.0.0.1,port=1 2>&1); rc=$?
        case "$o" in *"TPM absent"*) ok "control: with tpm2-tss, init --unlock tpm2 reaches the TCTI: $o" ;;
        *) bad "control: init --unlock tpm2 with tpm2-tss: exit $rc: $o" ;; esac
        for lib in libtss2-esys.so.0 libtss2-tctildr.so.0; do
                o=$(without $lib -- timeout 30 "$CLI" init --state-dir "$T/st-$lib" --unlock tpm2 \
                        --tpm2-tcti swtpm:host=127.0.0.1,port=1 2>&1); rc=$?
                case "$o" in
                *"tpm2-tss libraries"*"could not be loaded"*"libtss2-esys"*) [ $rc != 0 ] &&
                        ok "init --unlock tpm2 without $lib: exit $rc, '$o'" || bad "without $lib: exit 0: $o" ;;
                *) bad "init --unlock tpm2 without $lib: exit $rc, no clear message: $o" ;;
                esac
                [ ! -e "$T/st-$lib/store" ] && [ -z "$(ls "$T/st-$lib" 2>/dev/null | grep -v '^lock$')" ] &&
                        ok "...and no store was made" || bad "without $lib: left $(ls "$T/st-$lib")"
        done
fi
echo "lazy-libs: $fails failure(s)"
[ $fails = 0 ]
