#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What `meson install` delivers, staged with --destdir: the file list, the
# example policy as /etc/credbroker/policy.json (never over an existing
# one), the man pages rendered without a single groff/man warning, the unit through
# `systemd-analyze verify` and `security --offline` (exposure at most 2.0),
# the example policy accepted by the daemon, the CLI's version, -h on every
# verb, and the bash completion's verb list.  Tools that are absent
# (systemd-analyze, groff) skip with 77 naming them.
set -uo pipefail
BUILD=${CB_BUILDDIR:?} SRC=${CB_SRCDIR:?} CLI=${CREDBROKER_CLI:?} DAEMON=${CREDBROKERD:?}
for t in groff systemd-analyze; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
T=$(mktemp -d /tmp/cbpkg.XXXXXX)
trap 'rm -rf "$T"' EXIT

DESTDIR= meson install -C "$BUILD" --destdir "$T/d" --no-rebuild >"$T/install.log" 2>&1 ||
        { bad "meson install: $(tail -n 5 "$T/install.log")"; echo "$fails failure(s)"; exit 1; }
prefix=$(meson introspect "$BUILD" --buildoptions | /usr/bin/python3 -c \
        'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
R=$T/d$prefix
for f in sbin/credbrokerd bin/credbroker include/credbroker.h lib/systemd/system/credbrokerd.service \
        lib/sysusers.d/credbroker.conf lib/tmpfiles.d/credbroker.conf share/man/man1/credbroker.1 \
        share/man/man8/credbrokerd.8 share/man/man5/credbroker-policy.5 share/man/man7/credbroker-api.7 \
        share/bash-completion/completions/credbroker share/doc/credbroker/examples/policy.json \
        share/doc/credbroker/API.md share/doc/credbroker/integration.md; do
        [ -e "$R/$f" ] && ok "installed $f" || bad "not installed: $f"
done
[ -e "$T/d/etc/logrotate.d/credbroker" ] && ok "installed /etc/logrotate.d/credbroker" || bad "no logrotate snippet"
# The example policy where the daemon and the unit read it: listed by
# meson install as /etc/credbroker/policy.json.example, copied to
# policy.json, both 0644 (the daemon refuses a policy others may write); a
# second install keeps a policy already there.
P=$T/d/etc/credbroker/policy.json
cmp -s "$P.example" "$SRC/examples/policy.json" && [ "$(stat -c %a "$P.example")" = 644 ] &&
        grep -q "Installing .*examples/policy.json to $T/d/etc/credbroker\$" "$T/install.log" &&
        ok "installed /etc/credbroker/policy.json.example (0644, listed)" ||
        bad "example policy: $(ls -l "$P.example" 2>&1; grep -i policy "$T/install.log")"
cmp -s "$P" "$SRC/examples/policy.json" && [ "$(stat -c %a "$P")" = 644 ] &&
        ok "installed /etc/credbroker/policy.json (the example, 0644)" || bad "no /etc/credbroker/policy.json: $(ls -l "$P" 2>&1)"
printf '{"admins":{"uids":[0]}}' >"$P"
DESTDIR= meson install -C "$BUILD" --destdir "$T/d" --no-rebuild >"$T/install2.log" 2>&1 ||
        bad "second meson install: $(tail -n 5 "$T/install2.log")"
[ "$(cat "$P")" = '{"admins":{"uids":[0]}}' ] && ok "a second install keeps the policy that is there" ||
        bad "a reinstall replaced /etc/credbroker/policy.json: $(head -c 200 "$P")"
[ -n "$(find "$R/lib" -name libcredbroker.so.0.1.0)" ] &&
        ok "installed libcredbroker" || bad "no libcredbroker"
[ -n "$(find "$R/lib" -name credbroker.pc)" ] &&
        ok "installed credbroker.pc" || bad "no credbroker.pc"

# Man pages: no warning from groff (-ww: all of them) nor man's own lint.
for m in "$R"/share/man/man*/*; do
        w=$(groff -man -Tutf8 -ww -z "$m" 2>&1)
        [ -z "$w" ] && ok "groff -ww: $(basename "$m") clean" || bad "groff -ww $(basename "$m"): $w"
        if command -v man >/dev/null; then
                w=$(MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
                [ -z "$w" ] && ok "man --warnings: $(basename "$m") clean" || bad "man --warnings $(basename "$m"): $w"
        fi
done

# The unit: verify (its binary exists at the staged path, so point
# ExecStart there for the check), then the exposure score.
U=$T/credbrokerd.service
sed "s|$prefix/sbin/credbrokerd|$R/sbin/credbrokerd|" "$R/lib/systemd/system/credbrokerd.service" >"$U"
w=$(MANPATH="$R/share/man" systemd-analyze verify --man=no "$U" 2>&1)
[ -z "$w" ] && ok "systemd-analyze verify: clean" || bad "systemd-analyze verify: $w"
score=$(systemd-analyze security --offline=yes "$U" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "BENCH systemd-security-exposure ${score:-none}"
awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }' && ok "systemd-analyze security: $score (at most 2.0)" ||
        bad "systemd-analyze security: exposure '${score}' above 2.0"
# The figure README and docs/packaging.md record is the one this unit gets.
grep -qF "(\`systemd-analyze security\` ${score:-none} OK)" "$SRC/README.md" &&
        grep -qF "**${score:-none} OK**" "$SRC/docs/packaging.md" && ok "README and docs/packaging.md record $score" ||
        bad "the exposure recorded in README.md / docs/packaging.md is not the measured ${score:-none}"
grep -q '^Type=notify' "$U" && grep -q '^User=credbroker' "$U" && grep -q '^AmbientCapabilities=CAP_SYS_PTRACE$' "$U" &&
        ok "unit: Type=notify, User=credbroker, CAP_SYS_PTRACE only" || bad "unit settings changed"

out=$("$DAEMON" --check-policy "$SRC/examples/policy.json" 2>&1)
case "$out" in ok:*) ok "the example policy loads: $out" ;; *) bad "example policy: $out" ;; esac
[ "$("$DAEMON" --version)" = "credbrokerd 0.1.0" ] && ok "credbrokerd --version" || bad "credbrokerd --version"
[ "$("$CLI" --version)" = "credbroker 0.1.0" ] && ok "credbroker --version" || bad "credbroker --version"
for v in $("$CLI" --list-commands); do
        for h in -h --help; do
                o=$("$CLI" "$v" $h 2>&1)
                [ $? = 0 ] && [[ $o == usage:* ]] || bad "credbroker $v $h: $o"
        done
done
ok "-h and --help on every verb ($("$CLI" --list-commands | wc -l) verbs)"
# and after a sub-verb or other arguments (getopt's -h, not only argv[1]).
for sv in "policy check" "policy reload" "audit verify" "audit grep" "tpm accept-rollback" "version enable" \
        "rotate NAME" "pubkey --list" "check --json" "exec --proxy x"; do
        o=$("$CLI" $sv -h 2>&1)
        [ $? = 0 ] && [[ $o == usage:* ]] && ok "credbroker $sv -h" || bad "credbroker $sv -h: $o"
done
# The completion offers the verbs and a verb's flags.
w=$(PATH=$(dirname "$CLI"):$PATH bash -c 'source "$1"; COMP_WORDS=(credbroker to); COMP_CWORD=1; _credbroker;
        echo "${COMPREPLY[*]}"; COMP_WORDS=(credbroker exec --pro); COMP_CWORD=2; _credbroker; echo "${COMPREPLY[*]}"' \
        _ "$R/share/bash-completion/completions/credbroker")
[[ $w == *token*--proxy* ]] && ok "bash completion: verbs and flags" || bad "bash completion: $w"
echo "$fails failure(s)"
[ "$fails" = 0 ]
