#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# meson install: the example policy as /etc/credbroker/policy.json, where
# credbrokerd and the unit read it whatever the prefix (like the logrotate
# snippet), in $DESTDIR when staging.  Only when there is none: a reinstall
# or an upgrade never replaces the policy an operator wrote (meson's
# install_data would).  The same file is always installed under
# share/doc/credbroker/examples/; docs/policy.md explains each line.
set -eu
src=$1
dir=${DESTDIR:-}/etc/credbroker
dst=$dir/policy.json
if [ -e "$dst" ] || [ -L "$dst" ]; then
        echo "Keeping $dst (the example policy is not installed over an existing one)"
        exit 0
fi
mkdir -p "$dir"
# A policy others may write is refused by the daemon: 0644, whatever the umask.
install -m 0644 "$src" "$dst"
echo "Installing $src to $dst"
