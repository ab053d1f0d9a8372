#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# credbroker sandbox, the launcher (issue 17, step 1): every escape tried
# from inside a real bubblewrap sandbox under an unprivileged uid, each
# after a control that shows the same attempt works where it should (from
# outside, or a legitimate neighbour inside).  Needs root (to run as
# another uid and plant the host services), bwrap, unprivileged user
# namespaces; exits 77 naming what is missing.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
PROBE_SRC=$HERE/sandbox-probe.py
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (the sandbox runs under another uid)"; exit 77; }
for t in /usr/bin/python3 setpriv timeout /usr/bin/bwrap git; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
[ "$(uname -m)" = x86_64 ] || { echo "SKIP: missing prerequisite: x86_64 (the probe's system call numbers)"; exit 77; }
U=61911
as() { setpriv --reuid $U --regid $U --clear-groups "$@"; }
if ! out=$(as /usr/bin/bwrap --unshare-all --ro-bind / / /bin/true 2>&1); then
        echo "SKIP: missing prerequisite: unprivileged user namespaces for bwrap ($out)"; exit 77
fi
# Not under /tmp: the sandbox has a private /tmp of its own.
T=$(mktemp -d /var/tmp/cbsb-test.XXXXXX)
chmod 0755 "$T"
BG=''
cleanup() { for p in $BG; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T" "/run/cbsb-$$.sock"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

PROBE=$T/probe.py
install -m 0644 "$PROBE_SRC" "$PROBE"
H=$T/home
mkdir -p "$H/.ssh" "$H/proj/.git/hooks" "$H/.aws"
echo 'PRIVATE KEY MATERIAL' >"$H/.ssh/id_ed25519"
echo '[default]' >"$H/.aws/credentials"
echo 'export PS1=safe' >"$H/.bashrc"
echo 'history line' >"$H/.bash_history"
echo 'notes' >"$H/notes.txt"
printf '[core]\n\tbare = false\n' >"$H/proj/.git/config"
echo 'code' >"$H/proj/main.py"
chown -R $U:$U "$H"
chmod 0700 "$H/.ssh"
export HOME=$H
# sb [--cd DIR] ARGS...: credbroker sandbox as $U, from DIR (default the project)
sb() {
        local d=$H/proj
        if [ "$1" = --cd ]; then d=$2; shift 2; fi
        (cd "$d" && as env HOME="$H" CREDBROKER_SOCKET="$T/run/tools.sock" timeout 60 "$CLI" sandbox "$@")
}
# in CASE ARGS...: the probe inside a sandbox (from the project directory)
inside() { sb -- /usr/bin/python3 "$PROBE" "$@" 2>&1; }
out() { (cd "$H/proj" && as env HOME="$H" timeout 30 /usr/bin/python3 "$PROBE" "$@" 2>&1); }
# escape NAME WANT CASE ARGS...: refused inside (WANT: the errno, or "" for any)
escape() {
        local name=$1 want=$2; shift 2
        local o; o=$(inside "$@"); local rc=$?
        case "$o" in
        "REFUSED $want"*) [ $rc = 1 ] && ok "$name refused inside: $o" || bad "$name: exit $rc: $o" ;;
        *) bad "$name: not refused inside: $o" ;;
        esac
}
control() { # control NAME OUTPUT: the attempt works
        case "$2" in OK*) ok "control: $1: $2" ;; *) bad "control: $1 should work: $2" ;; esac
}

# ---- the broker: every sandbox is handed to it (its listener inside) ----------
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $U}, "root": {"uid": 0} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem"]} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
BG="$BG $!"
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
printf 'sk-sandbox-value-0123456789' | CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock "$CLI" put demo >/dev/null || bad "put demo"
export CREDBROKER_SOCKET=$T/run/tools.sock
[ -S "$T/run/sandbox.sock" ] || { bad "the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }

# ---- the launcher runs, passes the status and output --------------------
o=$(sb -- /bin/echo hello 2>&1); rc=$?
[ $rc = 0 ] && [ "$o" = hello ] && ok "a command runs: $o" || bad "echo in the sandbox: exit $rc: $o"
sb -- /bin/sh -c 'exit 3' >/dev/null 2>&1; rc=$?
[ $rc = 3 ] && ok "CMD's exit status is the sandbox's" || bad "exit status: $rc"
o=$(inside status); expect "no new privileges, seccomp filter, no capabilities" "NoNewPrivs=1 Seccomp=2 CapEff=0000000000000000" "$o"
o=$(cd "$H/proj" && timeout 60 "$CLI" sandbox -- /usr/bin/python3 "$PROBE" status 2>&1)
expect "as root too: no capabilities inside" "CapEff=0000000000000000" "$o"
o=$(cd "$H/proj" && /bin/sh -c 'ls /proc/self/fd' 7<"$H/notes.txt" | tr '\n' ' ')
case " $o " in *" 7 "*) ok "control: an inherited descriptor 7 reaches a plain child" ;; *) bad "control: fd 7 not inherited: $o" ;; esac
o=$(sb -- /bin/sh -c 'ls /proc/self/fd' 7<"$H/notes.txt" | tr '\n' ' ')
case " $o " in *" 7 "*) bad "an inherited descriptor reached CMD: $o" ;; *) ok "inherited descriptors do not reach CMD ($o)" ;; esac
o=$(inside listdir /proc); case "$o" in *",1,"*|"OK 1,"*) ok "own pid namespace (pid 1 inside)";; *) bad "pid namespace: $o";; esac
o=$(inside listdir /proc/1/ns); expect "/proc is the sandbox's" "OK " "$o"

# ---- bubblewrap missing or untrustworthy: fail closed --------------------
o=$(cd "$H/proj" && as env HOME="$H" CREDBROKER_BWRAP=/nonexistent/bwrap "$CLI" sandbox -- /bin/touch "$T/ran" 2>&1); rc=$?
[ $rc != 0 ] && [ ! -e "$T/ran" ] && expect "no bwrap: refused, CMD not run (exit $rc)" "bubblewrap not found" "$o" ||
        bad "no bwrap: exit $rc, ran: $(ls "$T/ran" 2>&1): $o"
cp /usr/bin/bwrap "$T/bwrap-copy" && chown $U "$T/bwrap-copy"
o=$(cd "$H/proj" && as env HOME="$H" CREDBROKER_BWRAP="$T/bwrap-copy" "$CLI" sandbox -- /bin/touch "$T/ran" 2>&1); rc=$?
[ $rc != 0 ] && [ ! -e "$T/ran" ] && expect "a bwrap the user owns: refused" "owned by root" "$o" ||
        bad "user-owned bwrap: exit $rc: $o"
o=$(cd "$H/proj" && as env HOME="$H" CREDBROKER_SOCKET=/nonexistent/tools.sock "$CLI" sandbox -- /bin/touch "$H/proj/ran" 2>&1); rc=$?
[ $rc != 0 ] && [ ! -e "$H/proj/ran" ] && expect "no broker to hand the listener to: refused, CMD not run (exit $rc)" "cannot reach the broker" "$o" ||
        bad "no broker: exit $rc, ran: $(ls "$H/proj/ran" 2>&1): $o"
o=$(sb --cd /usr -- /bin/true 2>&1); rc=$?
[ $rc = 2 ] && expect "a system directory as the working directory: refused" "system directory" "$o" ||
        bad "cwd /usr: exit $rc: $o"

# ---- the file system ------------------------------------------------------
control "read a file in the home directory" "$(inside read "$H/notes.txt")"
control "read ~/.ssh/id_ed25519 outside" "$(out read "$H/.ssh/id_ed25519")"
escape "read a planted ~/.ssh/id_ed25519" "" read "$H/.ssh/id_ed25519"
escape "read ~/.aws/credentials" "" read "$H/.aws/credentials"
escape "read shell history" "" read "$H/.bash_history"
escape "write into the hidden ~/.ssh (an empty read-only directory)" "EROFS" write "$H/.ssh/authorized_keys"
o=$(sb -- /bin/sh -c 'ls -A ~/.ssh | wc -l; ls -ld ~/.ssh | cut -c1-10' 2>&1)
case "$o" in "0"*) ok "the hidden ~/.ssh is empty inside" ;; *) bad "hidden ~/.ssh inside: $o" ;; esac
control "write in the working directory" "$(inside write "$H/proj/main.py")"
grep -q 'sandbox was here' "$H/proj/main.py" && ok "the write reached the host" || bad "cwd write lost"
escape "write .git/hooks/pre-commit in the working directory" "EROFS" write "$H/proj/.git/hooks/pre-commit" '#!/bin/sh'
escape "write .git/config" "EROFS" write "$H/proj/.git/config" '[core] hooksPath=/tmp'
escape "create .mcp.json in the working directory" "" write "$H/proj/.mcp.json" '{}'
escape "create .vscode/settings.json" "" write "$H/proj/.vscode/settings.json" '{}'
[ ! -e "$H/proj/.git/hooks/pre-commit" ] && [ ! -e "$H/proj/.mcp.json" ] && [ ! -e "$H/proj/.vscode" ] &&
        ok "no placeholder or hook left in the working directory" || bad "left behind: $(ls -a "$H/proj" "$H/proj/.git/hooks")"
# The directories holding protected entries cannot be swapped: renaming
# .git (or .config) away, copying it back writable and planting a hook
# the user's next git command would run (red team rt5 F1).
o=$(sb -- /bin/sh -c 'mv .git .git.orig 2>&1 && cp -a .git.orig .git && echo "#!/bin/sh" >.git/hooks/pre-commit && echo PLANTED' 2>&1)
case "$o" in *PLANTED*) bad "renaming .git away and back planted a hook: $o" ;; *) ok "renaming .git away refused: $o" ;; esac
[ -d "$H/proj/.git/hooks" ] && [ ! -e "$H/proj/.git.orig" ] && [ ! -e "$H/proj/.git/hooks/pre-commit" ] &&
        ok "...nothing changed on the host" || bad "after the rename attempt: $(ls -a "$H/proj" "$H/proj/.git/hooks")"
mkdir -p "$H/wt" && printf 'gitdir: /nonexistent\n' >"$H/wt/.git" && chown -R $U "$H/wt"
o=$(sb --cd "$H/wt" -- /bin/sh -c 'printf "gitdir: /tmp/evil\n" >.git 2>&1 && echo REPOINTED' 2>&1)
case "$o" in *REPOINTED*) bad "a worktree's .git file was repointed: $o" ;; *) ok "a worktree's .git file cannot be repointed: $o" ;; esac
mkdir -p "$H/plain" && chown $U "$H/plain"
o=$(sb --cd "$H/plain" -- /bin/sh -c 'mkdir -p .git/hooks 2>&1 && echo MADE' 2>&1)
case "$o" in *MADE*) bad "a .git was created in a directory that had none: $o" ;; *) ok "no .git can be made where there was none: $o" ;; esac
[ ! -e "$H/plain/.git" ] && ok "...and its placeholder is gone after exit" || bad "left behind in $H/plain: $(ls -a "$H/plain")"
# What else in .git git takes configuration or hooks from (red team rt7
# F1: .git/commondir naming a copy of .git with a hook, written inside the
# pinned .git, ran that hook at the user's next commit on the host), and a
# core.hooksPath inside the working tree (F5: husky's .husky/_).  Control:
# git status and a commit work inside, with the placeholders in place.
for hp in .husky/_ gen/hooks .githooks/ .githooks/. x/../.githooks; do
        R=$T/repo-$(echo "$hp" | tr -c 'a-z0-9\n' '_')
        mkdir -p "$R" && git -C "$R" init -q && git -C "$R" config core.hooksPath "$hp"
        [ "$hp" = .husky/_ ] && mkdir -p "$R/.husky/_" && printf '#!/bin/sh\n. "$(dirname "$0")/../pre-commit"\n' >"$R/.husky/_/pre-commit" &&
                chmod +x "$R/.husky/_/pre-commit" && echo 'true' >"$R/.husky/pre-commit"
        mkdir -p "$R/x"; case "$hp" in *.githooks*) mkdir -p "$R/.githooks" ;; esac
        chown -R $U "$R"
        o=$(sb --cd "$R" -- /bin/sh -c '
                git status --short >/dev/null 2>&1 && echo STATUS-OK
                git -c user.email=a@b -c user.name=a commit -q --allow-empty -m inside 2>&1 && echo COMMIT-OK
                mkdir evil && cp -a .git/. evil/ && printf "#!/bin/sh\necho PWNED-hook >&2\n" >evil/hooks/pre-commit && chmod +x evil/hooks/pre-commit
                rm .git/commondir 2>/dev/null && echo REMOVED-commondir
                printf "../evil\n" >.git/commondir 2>/dev/null && echo WROTE-commondir
                printf "[core]\n\thooksPath = ../evil/hooks\n" >.git/config.worktree 2>/dev/null && echo WROTE-config.worktree
                printf "* filter=x\n" >.git/info/attributes 2>/dev/null && echo WROTE-info
                mkdir -p .git/modules/sub/hooks 2>/dev/null && echo MADE-modules
                mkdir -p .git/worktrees/w 2>/dev/null && echo MADE-worktrees
                d='"$hp"'; mkdir -p "$d" 2>/dev/null; printf "#!/bin/sh\necho PWNED-hookspath >&2\n" >"$d/pre-commit" 2>/dev/null && chmod +x "$d/pre-commit" && echo WROTE-hookspath
                [ -e .husky/pre-commit ] && printf "echo PWNED-husky >&2\n" >>.husky/pre-commit 2>/dev/null && echo WROTE-husky
                top=${d%%/*}; mv "$top" moved 2>/dev/null && mkdir -p "$d" 2>/dev/null && printf "#!/bin/sh\necho PWNED-moved >&2\n" >"$d/pre-commit" 2>/dev/null && chmod +x "$d/pre-commit" && echo WROTE-moved-hookspath
                echo END' 2>&1)
        case "$o" in *STATUS-OK*COMMIT-OK*END*) ok "git status and commit work inside a repository (hooksPath $hp)" ;;
        *) bad "git inside a repository (hooksPath $hp): $o" ;; esac
        case "$o" in *WROTE-*|*REMOVED-*|*MADE-*) bad "git's configuration or hooks written from inside (hooksPath $hp): $(echo "$o" | grep -E 'WROTE|REMOVED|MADE' | tr '\n' ' ')" ;;
        *) ok "commondir, config.worktree, info/, modules/, worktrees/ and the hooksPath $hp refused inside" ;; esac
        h=$(cd "$R" && as env HOME="$H" git -c user.email=a@b -c user.name=a commit -q --allow-empty -m host 2>&1; echo "rc=$?")
        case "$h" in *PWNED*) bad "the host's next commit ran a hook the sandbox planted (hooksPath $hp): $h" ;;
        *rc=0*) ok "...the host's next commit runs no planted hook" ;; *) bad "the host's commit failed: $h" ;; esac
        [ ! -e "$R/.git/commondir" ] && [ ! -e "$R/.git/config.worktree" ] && [ ! -e "$R/.git/modules" ] && [ ! -e "$R/.git/worktrees" ] &&
                ok "...and no placeholder is left in .git" || bad "left in $R/.git: $(ls -a "$R/.git")"
done
# An include in the repository's read-only config naming a file in the
# working tree (rt8 A3), an initialised submodule's .git file (rt8 A2),
# and a .git that is a symlink (rt8 A7).
R=$T/repo-inc
mkdir -p "$R/tools" "$T/subsrc" && git -C "$R" init -q && git -C "$R" config include.path ../tools/git.conf &&
        printf '[user]\n\tname = x\n' >"$R/tools/git.conf"
git -C "$T/subsrc" init -q && git -C "$T/subsrc" -c user.email=a@b -c user.name=a commit -q --allow-empty -m s
git -C "$R" -c protocol.file.allow=always submodule -q add "$T/subsrc" sub 2>/dev/null
chown -R $U "$R" "$T/subsrc"
o=$(sb --cd "$R" -- /bin/sh -c '
        git status --short >/dev/null 2>&1 && echo STATUS-OK
        printf "[core]\n\tfsmonitor = echo PWNED-include >&2; false\n" >>tools/git.conf 2>/dev/null && echo WROTE-include
        mv tools tools2 2>/dev/null && echo MOVED-include
        [ -f sub/.git ] && echo SUBGIT-FILE
        printf "gitdir: ../evilgit\n" >sub/.git 2>/dev/null && echo WROTE-subgit
        echo END' 2>&1)
case "$o" in *STATUS-OK*SUBGIT-FILE*END*) ok "control: git works in a repository with an include and a submodule" ;;
*) bad "repository with an include and a submodule: $o" ;; esac
case "$o" in *WROTE-*|*MOVED-*) bad "an included config file or a submodule's .git written from inside: $o" ;;
*) ok "the included config file and the submodule's .git are read-only inside" ;; esac
mkdir -p "$T/repo-lnk" && git -C "$T/repo-lnk" init -q && mv "$T/repo-lnk/.git" "$T/repo-lnk/.realgit" &&
        ln -s .realgit "$T/repo-lnk/.git" && chown -R $U "$T/repo-lnk"
o=$(sb --cd "$T/repo-lnk" -- /bin/echo RAN 2>&1); rc=$?
[ $rc != 0 ] && expect "a .git that is a symlink refuses the launch" "is a symlink" "$o" || bad "a symlinked .git ran (rc $rc): $o"
# Nested repositories (red team rt8 A1): CMD makes sub/ a repository whose
# config sets core.fsmonitor, registers it in the top repository's index
# and commits; the host's next git status at the top must not run it (its
# .git is moved aside when CMD ends).  Control: a repository CMD makes with
# git init and commits in is kept as it is.
R=$T/repo-nest
mkdir -p "$R" && git -C "$R" init -q && git -C "$R" -c user.email=a@b -c user.name=a commit -q --allow-empty -m top &&
        chown -R $U "$R"
o=$(sb --cd "$R" -- /bin/sh -c '
        git init -q sub && git -C sub -c user.email=a@b -c user.name=a commit -q --allow-empty -m s &&
        git -C sub config core.fsmonitor "echo PWNED-fsmonitor >&2; false" &&
        git update-index --add --cacheinfo "160000,$(git -C sub rev-parse HEAD),sub" &&
        git -c user.email=a@b -c user.name=a commit -q -m add-sub && echo PLANTED
        git init -q fine && git -C fine -c user.email=a@b -c user.name=a commit -q --allow-empty -m fine && echo FINE-REPO
        echo END' 2>&1)
case "$o" in *PLANTED*FINE-REPO*END*) ok "control: inside, a nested repository is made, registered and committed" ;;
*) bad "nested repositories inside: $o" ;; esac
expect "...its .git is moved aside when CMD ends, and the launcher says so" "sub/.git.credbroker-review" "$o"
h=$(cd "$R" && as env HOME="$H" git status --short 2>&1; echo "rc=$?")
case "$h" in *PWNED*) bad "the host's git status ran the nested repository's fsmonitor: $h" ;;
*) ok "...the host's next git status runs nothing of it" ;; esac
[ -d "$R/fine/.git" ] && [ ! -e "$R/fine/.git.credbroker-review" ] && ok "...a repository git init made is kept as it is" ||
        bad "a plain nested repository was moved: $(ls -a "$R/fine")"
# Variants (red team rt9): an old planted .git renamed into place (its
# contents keep old ctimes: B10/B7), every predictable aside name taken
# (B9), a nested repository under a directory the walk cannot list (B4),
# a project directory made to look like a bare repository (B2), and a
# hook of the top repository that is a symlink into the tree (B5).
R=$T/repo-rt9
mkdir -p "$R/old" "$R/scripts" && git -C "$R" init -q && git -C "$R" -c user.email=a@b -c user.name=a commit -q --allow-empty -m top &&
        git init -q "$R/old" && git -C "$R/old" config core.fsmonitor "echo PWNED-old >&2; false" &&
        mv "$R/old/.git" "$R/old/.git.stash" && echo 'true' >"$R/scripts/pre-commit" && chmod +x "$R/scripts/pre-commit" &&
        ln -s ../../scripts/pre-commit "$R/.git/hooks/pre-commit" && chown -R $U "$R"
o=$(sb --cd "$R" -- /bin/sh -c '
        mv old/.git.stash old/.git && echo RENAMED-IN
        for i in "" $(seq 1 99); do mkdir -p "old/.git.credbroker-review${i:+-$i}"; done
        mkdir -p locked && git init -q locked/deep && git -C locked/deep config core.fsmonitor "echo PWNED-locked >&2; false" && chmod 311 locked && echo LOCKED
        mkdir -p src/objects src/refs && printf "ref: refs/heads/main\n" >src/HEAD && printf "[core]\n\tfsmonitor = echo PWNED-bare >&2; false\n" >src/config && echo BARE
        echo "echo PWNED-linkedhook >&2" >>scripts/pre-commit 2>/dev/null && echo WROTE-linkedhook
        echo END' 2>&1)
case "$o" in *RENAMED-IN*LOCKED*BARE*END*) ok "control: inside, the rt9 variants were set up" ;; *) bad "rt9 variants inside: $o" ;; esac
case "$o" in *WROTE-linkedhook*) bad "a hook's symlink target in the tree was written: $o" ;; *) ok "a hook symlinked into the tree keeps its target read-only" ;; esac
[ ! -e "$R/old/.git" ] && ok "an old planted .git renamed into place is moved aside (whatever the names taken)" ||
        bad "old/.git left in place: $(ls -a "$R/old")"
[ ! -e "$R/locked/deep/.git" ] && [ "$(stat -c %a "$R/locked")" = 311 ] &&
        ok "a nested repository under a directory the walk could not list is moved aside, the mode given back" ||
        bad "locked/deep: $(ls -a "$R/locked/deep" 2>&1); mode $(stat -c %a "$R/locked")"
[ ! -e "$R/src/HEAD" ] && ok "a directory made to look like a bare repository loses its HEAD" || bad "src/HEAD left: $(ls "$R/src")"
h=$(cd "$R" && as env HOME="$H" sh -c 'git status --short; git -C old status --short; cd src && git status --short; cd .. && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m host' 2>&1)
case "$h" in *PWNED*) bad "the host's git ran something CMD planted: $h" ;; *) ok "...the host's git status (top, old/, src/) and commit run none of it" ;; esac
# The home directory as a writable root (red team rt7 F6: ~/.config/git/config's
# fsmonitor, a user-site .pth, ~/.local/bin ... ran on the host): refused,
# as is a --write inside ~/.config or ~/.local; the project is the control.
mkdir -p "$H/.local/bin" && chown -R $U "$H/.local"
o=$(sb --cd "$H" -- /bin/true 2>&1); rc=$?
[ $rc != 0 ] && expect "the home directory as the working directory is refused" "start-up files of your home" "$o" ||
        bad "the home directory as the working directory ran (rc $rc): $o"
o=$(sb --write "$H/.local/bin" -- /bin/true 2>&1); rc=$?
[ $rc != 0 ] && expect "--write inside ~/.local is refused" "start-up files of your home" "$o" ||
        bad "--write ~/.local/bin ran (rc $rc): $o"
o=$(sb -- /bin/sh -c 'echo ran' 2>&1)
expect "...while the project directory runs" "ran" "$o"
# The placeholders of a fresh directory cannot be removed, renamed or
# written (each is a read-only mount point inside), and leave nothing.
o=$(sb --cd "$H/plain" -- /bin/sh -c 'for f in .bashrc .mcp.json .envrc; do rm -f $f 2>&1 || true; mv $f x 2>&1 || true; echo evil >>$f 2>&1 && echo "WROTE $f"; done; for d in .vscode .claude .config; do mv $d x 2>&1 || true; rmdir $d 2>&1 || true; mkdir -p $d/sub 2>&1 && echo "MADE $d/sub"; done; ls -A x 2>&1' 2>&1)
case "$o" in *WROTE*|*MADE*) bad "a placeholder was removed, renamed or written: $o" ;;
*"Device or resource busy"*) ok "placeholders resist rm, mv and writes (EBUSY / EROFS)" ;; *) bad "placeholders: $o" ;; esac
[ -z "$(ls -A "$H/plain")" ] && ok "...and nothing is left in the directory" || bad "left behind in $H/plain: $(ls -A "$H/plain")"
escape "write ~/.bashrc (home read-only)" "EROFS" write "$H/.bashrc"
grep -q 'sandbox' "$H/.bashrc" && bad "~/.bashrc was changed" || ok "~/.bashrc unchanged on the host"
# A missing ~/.gitconfig's placeholder is an empty read-only file: git
# run with the home as the working directory works, writing it is refused.
mkdir -p "$T/ghome" && chown $U "$T/ghome"
o=$(sb --cd "$T/ghome" -- /bin/sh -c 'HOME=$PWD git config --global --list; echo "list=$?"; git init -q repo 2>&1 && cd repo && HOME=.. git status --short; echo "status=$?"; cd .. && HOME=$PWD git config --global user.name evil 2>&1; echo "set=$?"' 2>&1)
case "$o" in *"list=0"*"status=0"*) ok "git with cwd = \$HOME and no ~/.gitconfig works inside: $(echo "$o" | tr '\n' ' ')" ;;
*) bad "git with cwd = \$HOME and no ~/.gitconfig: $o" ;; esac
case "$o" in *"set=0"*) bad "writing ~/.gitconfig was not refused: $o" ;; *"set="*) ok "...and writing ~/.gitconfig is refused" ;; *) bad "git config --global set: $o" ;; esac
[ ! -e "$T/ghome/.gitconfig" ] && ok "...and its placeholder is gone after exit" || bad "left behind: $(ls -la "$T/ghome")"
# Two sandboxes in one working directory (an agent's parallel tool calls):
# the first one's end must not remove the placeholders the second still
# relies on (unlinking a mount point detaches it in the other namespace).
mkdir -p "$T/par" && chown $U "$T/par"
(sb --cd "$T/par" -- /bin/sleep 1.5 >/dev/null 2>&1) &
P1=$!
for _ in $(seq 50); do [ -e "$T/par/.bashrc" ] && break; sleep 0.05; done
o=$(sb --cd "$T/par" -- /bin/sh -c 'sleep 2; echo pwned >>.bashrc 2>&1 && echo WROTE-BASHRC; mkdir -p .git/hooks 2>&1 && echo MADE-GIT; mkdir .vscode 2>&1 && echo MADE-VSCODE; echo done' 2>&1)
wait $P1
case "$o" in *WROTE*|*MADE-*) bad "after the first of two sandboxes in one directory ended, the second wrote protected entries: $o" ;;
*done*) ok "two sandboxes in one directory: the second stays protected after the first ends" ;; *) bad "concurrent sandbox: $o" ;; esac
[ -z "$(ls -A "$T/par")" ] && ok "...and the last one out removed every placeholder" || bad "left behind in $T/par: $(ls -A "$T/par")"
# Several started at once in a fresh directory (each may find the others'
# placeholders half made): all protected, nothing left.
mkdir -p "$T/par3" && chown $U "$T/par3"
PP=''
for i in 1 2 3; do
        (sb --cd "$T/par3" -- /bin/sh -c "sleep 0.$((i + 2)); echo x >>.bashrc 2>/dev/null && echo WROTE; mkdir -p .git/hooks 2>/dev/null && echo MADE; echo done$i" >"$T/par3-$i.out" 2>&1) &
        PP="$PP $!"
        sleep 0.05
done
for p in $PP; do wait $p; done
o=$(cat "$T"/par3-*.out)
case "$o" in *WROTE*|*MADE*) bad "three sandboxes started together: a protected entry was written: $o" ;;
*done1*done2*done3*) ok "three sandboxes started together in one directory: each protected" ;; *) bad "three sandboxes: $o" ;; esac
[ -z "$(ls -A "$T/par3")" ] && ok "...and nothing is left" || bad "left behind in $T/par3: $(ls -A "$T/par3")"
# A launcher killed with SIGKILL leaves its placeholders (marked); the next
# sandbox there takes them as placeholders and removes them at its end;
# a user's own empty .envrc and .idea are never removed.
mkdir -p "$T/kill" && chown $U "$T/kill"
(cd "$T/kill" && exec setpriv --reuid $U --regid $U --clear-groups env HOME="$H" CREDBROKER_SOCKET="$T/run/tools.sock" "$CLI" sandbox -- /bin/sleep 30) &
L=$!
for _ in $(seq 100); do pgrep -u $U -f '^/bin/sleep 30' >/dev/null && break; sleep 0.05; done
kill -9 $L; wait $L 2>/dev/null
n=$(ls -A "$T/kill" | wc -l)
[ "$n" -gt 0 ] && ok "control: a launcher killed with SIGKILL leaves its $n placeholders" || bad "no placeholder left by a killed launcher"
rm -f "$T/kill/.envrc"; rmdir "$T/kill/.idea" 2>/dev/null # two of the leftovers, replaced by the user's own
as touch "$T/kill/.envrc"; as mkdir "$T/kill/.idea"
o=$(sb --cd "$T/kill" -- /bin/sh -c 'echo x >>.bashrc 2>&1; echo x >>.envrc 2>&1; echo end' 2>&1)
# (stdout and stderr are separate pipes out of the sandbox: their lines may come in either order)
case "$o" in *".bashrc: Read-only"*) r1=1 ;; *) r1=0 ;; esac
case "$o" in *".envrc: Read-only"*) r2=1 ;; *) r2=0 ;; esac
case "$r1$r2$o" in 11*end*) ok "the next sandbox there: the leftovers and the user's entries are read-only" ;;
*) bad "after a killed launcher: $o" ;; esac
[ "$(ls -A "$T/kill" | sort | tr '\n' ' ')" = ".envrc .idea " ] && ok "...and it removed the leftovers, not the user's empty .envrc and .idea" ||
        bad "after the next sandbox: $(ls -A "$T/kill" | tr '\n' ' ')"
escape "write /etc" "EROFS" write /etc/cbsb-test
escape "write /usr" "EROFS" write /usr/cbsb-test
control "write a private /tmp" "$(inside write /tmp/cbsb-inner)"
[ ! -e /tmp/cbsb-inner ] && ok "/tmp is private" || { bad "/tmp shared"; rm -f /tmp/cbsb-inner; }
mkdir -p "$T/extra" && echo s >"$T/run/state" && chmod 0644 "$T/run/state" && chown $U "$T/extra"
control "the broker's run dir outside" "$(out read "$T/run/state")"
escape "the broker's run dir (the socket's directory) is hidden" "" read "$T/run/state"
o=$(sb --write "$T/extra" -- /usr/bin/python3 "$PROBE" write "$T/extra/f" 2>&1)
control "--write DIR" "$o"
o=$(sb --hide "$H/notes.txt" -- /usr/bin/python3 "$PROBE" read "$H/notes.txt" 2>&1)
expect "--hide FILE" "REFUSED" "$o"

# ---- the network: only lo, and it is the sandbox's own ------------------------
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", int(sys.argv[1])))
def udp():
    while True:
        d, a = u.recvfrom(64); u.sendto(b"answer", a)
threading.Thread(target=udp, daemon=True).start()
x = socket.socket(socket.AF_UNIX); x.bind(sys.argv[2]); x.listen(4)
import os; os.chmod(sys.argv[2], 0o777)
a = socket.socket(socket.AF_UNIX); a.bind("\0" + sys.argv[3]); a.listen(4)
def serve(l):
    while True:
        c, _ = l.accept(); c.sendall(b"host service\n"); c.close()
for l in (x, a): threading.Thread(target=serve, args=(l,), daemon=True).start()
serve(s)' "$PORT" "/run/cbsb-$$.sock" "cbsb-$$" &
BG="$BG $!"
for _ in $(seq 50); do [ -S "/run/cbsb-$$.sock" ] && break; sleep 0.1; done
control "TCP to a host service on 127.0.0.1 from outside" "$(out tcp 127.0.0.1 "$PORT")"
escape "TCP to the host's 127.0.0.1 (the sandbox's lo is another)" "ECONNREFUSED" tcp 127.0.0.1 "$PORT"
HOSTIP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
if [ -n "$HOSTIP" ]; then
        control "TCP to the host's address $HOSTIP from outside" "$(out tcp "$HOSTIP" "$PORT")"
        escape "TCP to the host's address" "ENETUNREACH" tcp "$HOSTIP" "$PORT"
else
        echo "note: no global IPv4 address on the host: that case not tried"
fi
control "UDP to a resolver on the host's 127.0.0.1 from outside" "$(out udp 127.0.0.1 "$PORT")"
escape "DNS: UDP to a host resolver" "TIMEOUT" udp 127.0.0.1 "$PORT"
escape "DNS: name resolution" "" resolve example.com
control "a TCP socket inside" "$(inside stream)"
escape "a raw socket" "EPERM" raw
escape "a packet socket" "EPERM" packet
control "a host Unix socket from outside" "$(out unix "/run/cbsb-$$.sock")"
escape "connect to a host Unix socket" "EPERM" unix "/run/cbsb-$$.sock"
control "an abstract Unix socket of the host from outside" "$(out unix "@cbsb-$$")"
escape "connect to an abstract Unix socket of the host" "EPERM" unix "@cbsb-$$"
control "socketpair inside (its ends reach nothing else)" "$(inside socketpair)"

# ---- processes, terminal, kernel ----------------------------------------------
sleep 300 & SLP=$!; BG="$BG $SLP"
control "ptrace a child outside" "$(out ptrace)"
escape "ptrace a child inside" "EPERM" ptrace
escape "ptrace a host process" "EPERM" ptrace "$SLP"
control "TIOCSTI on a pty outside (root)" "$(/usr/bin/python3 "$PROBE" tiocsti 2>&1)"
escape "TIOCSTI" "EPERM" tiocsti
escape "TIOCSTI with bits above 32 set" "EPERM" tiocsti high
escape "open the controlling terminal (a new session)" "" tty
control "keyctl outside" "$(out keyctl)"
escape "keyctl" "EPERM" keyctl
escape "bpf" "EPERM" bpf
escape "perf_event_open" "EPERM" perf
escape "userfaultfd" "EPERM" userfaultfd
escape "mount" "EPERM" mount
escape "clock_settime" "EPERM" clock
escape "io_uring_setup" "EPERM" io_uring
escape "a user namespace inside" "" userns

# ---- the sandbox dies with its launcher ---------------------------------------
(cd "$H/proj" && exec setpriv --reuid $U --regid $U --clear-groups env HOME="$H" CREDBROKER_SOCKET="$T/run/tools.sock" "$CLI" sandbox -- /bin/sleep 317) &
L=$!
for _ in $(seq 50); do pgrep -u $U -f '^/bin/sleep 317' >/dev/null && break; sleep 0.1; done
pgrep -u $U -f '^/bin/sleep 317' >/dev/null && ok "control: the sandboxed sleep runs" || bad "sandboxed sleep not seen"
kill -9 $L; wait $L 2>/dev/null
for _ in $(seq 50); do pgrep -u $U -f '^/bin/sleep 317' >/dev/null || break; sleep 0.1; done
pgrep -u $U -f '^/bin/sleep 317' >/dev/null && { bad "the sandbox outlived its launcher (SIGKILL)"; pkill -u $U -f '^/bin/sleep 317'; } ||
        ok "the sandbox dies with its launcher (SIGKILL)"

# ---- the launcher killed before it releases CMD: CMD never runs ----------------
# A "broker" that takes the hand-over and never answers keeps the launcher
# waiting after bwrap has set the sandbox up; the launcher is then killed.
# bwrap reads EOF on --block-fd and would go on: it must find no seccomp
# program (the launcher writes it only at the release) and stop.
mkdir -p "$T/mute" "$T/killed" && chown $U "$T/killed" && chmod 0755 "$T/mute"
/usr/bin/python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(4)
cs = []
while True:
    c, _ = s.accept(); cs.append(c)' "$T/mute/sandbox.sock" &
BG="$BG $!"
for _ in $(seq 50); do [ -S "$T/mute/sandbox.sock" ] && break; sleep 0.1; done
(cd "$T/killed" && exec setpriv --reuid $U --regid $U --clear-groups env HOME="$H" CREDBROKER_SOCKET="$T/mute/tools.sock" \
        "$CLI" sandbox -- /bin/sh -c 'touch ran; sleep 5' >"$T/killed.out" 2>&1) &
L=$!
for _ in $(seq 100); do pgrep -u $U -x bwrap >/dev/null && [ -e "$T/killed/.bashrc" ] && break; sleep 0.05; done
sleep 0.5 # the launcher now waits for the broker's answer; bwrap for --block-fd
pgrep -u $U -x bwrap >/dev/null && ok "control: bwrap waits for the release" || bad "no bwrap waiting: $(cat "$T/killed.out")"
kill -9 $L; wait $L 2>/dev/null
sleep 1
[ ! -e "$T/killed/ran" ] && ok "the launcher killed before the release: CMD never ran" ||
        bad "the launcher was killed before the release and CMD ran anyway (unsupervised, without the launcher's mounts)"
pkill -9 -u $U -x bwrap 2>/dev/null

# ---- --env VAR=SECRET through the broker, masked ------------------------------
o=$(sb --env DEMO=demo -- /bin/sh -c 'printf "%s|" "$DEMO"; [ -e "$CREDBROKER_SOCKET" ] && echo sock-visible || echo sock-hidden' 2>&1)
expect "--env: the value reaches CMD, masked in its output; tools.sock not visible inside" "[REDACTED:demo]|sock-hidden" "$o"

echo "sandbox: $fails failure(s)"
[ $fails = 0 ]
