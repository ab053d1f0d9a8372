#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# meson install: /etc/credbroker/policy.json from the example meson has just
# installed beside it (policy.json.example), in $DESTDIR when staging; only
# when there is no policy.json: a reinstall or an upgrade never replaces
# the policy an operator wrote (install_data would).  /etc whatever the
# prefix: the daemon and the unit read /etc/credbroker/policy.json.
# (meson 1.0 shows an install script's output only when it fails.)
set -eu
dir=${DESTDIR:-}/etc/credbroker
[ -e "$dir/policy.json" ] || [ -L "$dir/policy.json" ] && exit 0
# A policy others may write is refused by the daemon: 0644, whatever the umask.
install -m 0644 "$dir/policy.json.example" "$dir/policy.json"
