#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`systemctl enable --now credbrokerd` for the quick-start test, where no
systemd runs: start the installed unit's ExecStart= the way the unit does —
its User=/Group=, only its AmbientCapabilities= (bounding set likewise),
no new privileges, its RuntimeDirectory= — with a NOTIFY_SOCKET, and return
once the daemon has sent READY=1 (Type=notify), printing its pid.  With
ProtectSystem=strict, ProtectHome= and PrivateTmp= in the unit, it runs in
a mount namespace where every mount is read-only except the unit's
State-/Logs-/RuntimeDirectory=, /home is empty and /tmp private, so the
daemon must live with them.  The syscall and address-family filters are
not reproduced; `systemd-analyze verify`/`security` check the unit itself.
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
sandbox = []
if cfg.get("ProtectSystem") == ["strict"]:
    rw = ["/var/lib/" + d for d in cfg.get("StateDirectory", [])] + \
         ["/var/log/" + d for d in cfg.get("LogsDirectory", [])] + \
         ["/run/" + d for d in cfg.get("RuntimeDirectory", [])]
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo")]
    script = ["set -e"]
    script += ["mount --bind %s %s" % (d, d) for d in rw]
    script += ["mount -o remount,bind,ro %s 2>/dev/null || true" % m
               for m in sorted(set(mounts), key=len) if m not in rw and not m.startswith(("/proc", "/sys", "/dev"))]
    if cfg.get("ProtectHome") == ["yes"]:
        script.append("mount -t tmpfs -o ro,mode=0755 home /home")
    if cfg.get("PrivateTmp") == ["yes"]:
        script.append("mount -t tmpfs -o mode=1777 tmp /tmp")
    script.append('exec "$@"')
    sandbox = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(script), "sandbox"]
cmd = sandbox + ["setpriv", "--reuid", user, "--regid", cfg["Group"][0], "--init-groups", "--no-new-privs",
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
