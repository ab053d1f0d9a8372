#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# meson install's last step.  Staged installs (DESTDIR) and non-root
# installs only say what a package's postinst would do.
set -eu
libdir=$1
if [ -n "${DESTDIR:-}" ] || [ "$(id -u)" != 0 ]; then
        echo "credbroker: staged or non-root install: run as root on the target:"
        echo "  systemd-sysusers credbroker.conf; systemd-tmpfiles --create credbroker.conf; ldconfig"
        exit 0
fi
ldconfig
systemd-sysusers "$libdir/sysusers.d/credbroker.conf"
systemd-tmpfiles --create "$libdir/tmpfiles.d/credbroker.conf"
if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
fi
