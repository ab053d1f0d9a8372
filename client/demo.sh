#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: a guided tour on an embedded default configuration in a
# temporary directory, cleaned up afterwards.  Usage: demo.sh BUILD_DIR
#
# At this stage it shows the sealed store: init, the files and their modes,
# the offline integrity check, and what tampering and a wrong key look like.
# (The daemon, tokens and a tool that never sees its secret come with the
# broker; this script grows with them.)
set -euo pipefail

build=${1:-build}
cli="$build/client/credbroker"
[ -x "$cli" ] || { echo "demo: $cli not built (run 'make build')" >&2; exit 1; }

tmp=$(mktemp -d /tmp/credbroker-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
state="$tmp/state"
key="$tmp/host.key"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. Create a sealed store (the key-encryption key is wrapped by a host key file)"
run "$cli" init --state-dir "$state" --unlock "keyfile:$key"

step "2. What is on disk: a private directory, private files, no plaintext"
run ls -la "$state" "$key"

step "3. Offline integrity check: header checksum + MAC, log MAC chain, every version decrypted"
run "$cli" check --state-dir "$state" --unlock "keyfile:$key"

step "4. Someone edits one byte of the header: refused, naming the file (exit 4)"
cp -a "$state" "$tmp/tampered"
printf '\x01' | dd of="$tmp/tampered/header" bs=1 seek=40 conv=notrunc status=none
set +e
"$cli" check --state-dir "$tmp/tampered" --unlock "keyfile:$key"
echo "exit code: $?"
set -e

step "5. The wrong key file: its own message and exit code (3), not an integrity error"
head -c 32 /dev/urandom > "$tmp/other.key"
chmod 0400 "$tmp/other.key"
set +e
"$cli" check --state-dir "$state" --unlock "keyfile:$tmp/other.key"
echo "exit code: $?"
step "6. A key file others can read is refused outright (exit 7)"
chmod 0644 "$tmp/other.key"
"$cli" check --state-dir "$state" --unlock "keyfile:$tmp/other.key"
echo "exit code: $?"
set -e

step "Done. Everything above lived in $tmp, now removed."
