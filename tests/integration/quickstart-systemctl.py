#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`systemctl enable --now credbrokerd` for the quick-start test, where no
systemd runs: start the installed unit's ExecStart= the way the unit does —
its User=/Group=, only its AmbientCapabilities= (bounding set likewise),
no new privileges, its RuntimeDirectory= — with a NOTIFY_SOCKET, and return
once the daemon has sent READY=1 (Type=notify), printing its pid.  What this
does not reproduce (the mount, syscall and address-family sandbox) is what
`systemd-analyze verify` and `security` check in test-packaging.sh.
Usage: quickstart-systemctl.py UNIT_FILE LOG_FILE"""
import os
import pwd
import shlex
import socket
import subprocess
import sys

unit, log = sys.argv[1], sys.argv[2]
text = open(unit).read().replace("\\\n", " ")
cfg = {}
for line in text.splitlines():
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        cfg.setdefault(k.strip(), []).append(v.strip())
assert cfg["Type"] == ["notify"], cfg.get("Type")
user = cfg["User"][0]
caps = [c.lower().replace("cap_", "") for c in cfg["AmbientCapabilities"][0].split()]
pw = pwd.getpwnam(user)
for d in cfg.get("RuntimeDirectory", []):
    p = "/run/" + d
    os.makedirs(p, exist_ok=True)
    os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(p, int(cfg.get("RuntimeDirectoryMode", ["0755"])[0], 8))
ns = "/run/quickstart-notify.sock"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.path.exists(ns):
    os.unlink(ns)
s.bind(ns)
os.chown(ns, pw.pw_uid, pw.pw_gid)
capset = ",".join("+" + c for c in caps)
cmd = ["setpriv", "--reuid", user, "--regid", cfg["Group"][0], "--init-groups", "--no-new-privs",
       "--inh-caps", "-all," + capset, "--ambient-caps", capset, "--bounding-set", "-all," + capset,
       "--"] + shlex.split(cfg["ExecStart"][0])
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": ns}
p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
                     stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
s.settimeout(30)
try:
    while True:
        msg = s.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            break
except socket.timeout:
    sys.exit("credbrokerd did not send READY=1 within 30 s; its log:\n" + open(log).read())
print(p.pid)
