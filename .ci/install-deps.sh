#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Idempotent dependency installer for a fresh Debian 12 (bookworm) machine.
#
#   bash .ci/install-deps.sh
#
# - Every package already installed: prints one line and exits 0 without
#   calling apt-get at all (fast; `make test` runs this every time).
# - Something missing and we are root: apt-get update + install (noninteractive).
# - Not root but sudo exists: the same through sudo.
# - Otherwise: prints exactly which packages are missing and exits 1.

set -u -o pipefail

# ---------------------------------------------------------------------------
# The package list. One package per line, each with the reason it is needed.
# Later issues: append new packages here (one line each, with a reason).
# ---------------------------------------------------------------------------
CB_DEPS=(
  gcc                 # C17 compiler for the normal and the ASan+UBSan builds
  make                # the top-level Makefile (make deps/build/test/demo)
  meson               # build system (>= 1.0; bookworm ships 1.0.1)
  ninja-build         # meson's backend
  pkg-config          # meson finds libsodium through its .pc file
  libsodium-dev       # all cryptography (keys/: secretbox, pwhash, kx, ...)
  clang               # libFuzzer harnesses (-fsanitize=fuzzer) for the fuzz smoke run
  libclang-rt-14-dev  # clang-14's runtimes: libFuzzer, ASan/UBSan for clang (only Recommended by clang)
  llvm                # llvm-symbolizer: symbolized ASan/UBSan/libFuzzer stack traces
  util-linux          # setsid/flock/unshare/fallocate used by test and bench scripts
  libjansson-dev      # broker/ and client/: policy and API JSON
  libmicrohttpd-dev   # broker/: HTTP/1.1 server on the Unix sockets
  libcurl4-openssl-dev # client/: libcredbroker's HTTP over the Unix socket; broker/: the proxy's upstream
  libsystemd-dev      # broker/: sd_notify(3) for Type=notify readiness, status and the watchdog
  openssl             # tests/integration/test-proxy.sh and make demo: a test CA and certificates
  curl                # tests/integration/test-daemon.sh: a second real client executable
  python3             # tests: Debian's interpreter (runnable by other uids), a third client executable
  libtss2-dev         # keys/: the tpm2 unlock provider (tpm2-tss ESAPI, TCTI loader, marshalling, RC decoding)
  swtpm               # tests/integration/test-tpm.sh, tests/bench/unlock.sh: a real software TPM on loopback
  swtpm-tools         # swtpm's companion tools (swtpm_setup), installed with swtpm for operators and CI
  tpm2-tools          # tests/integration/test-tpm.sh: tpm2_pcrextend, tpm2_getcap (an independent view of the TPM)
  python3-nacl        # tests/integration/test-provision.sh: a provisioning blob sealed by PyNaCl (cross-implementation check)
  wrk                 # tests/bench/proxy.sh: the load generator (it stops with "needs wrk" without it)
  nginx               # tests/adversarial/: a real upstream HTTP parser (own config, loopback port; the system service is never used)
  php-cli             # tests/adversarial/: php -S with a small app behind a POST-only seal (method/path override spellings)
  nodejs              # tests/adversarial/: Node's http module (llhttp) as a third upstream HTTP parser; test-clients.sh: client/node (test-sdk.sh also needs npm)
  groff-base          # tests/integration/test-packaging.sh: man pages rendered with groff -ww (no warning allowed)
  man-db              # tests/integration/test-packaging.sh: man --warnings -l on each page
  systemd             # systemd-analyze verify/security on the unit; systemd-sysusers/tmpfiles for make install
  iproute2            # tests/integration/test-quickstart.sh, test-sdk.sh: ip, loopback in a network namespace
  bubblewrap          # credbroker sandbox: bwrap runs the sandboxed command (tests/integration/test-sandbox.sh)
  libseccomp-dev      # client/sb_seccomp_gen.c: builds (at build time) the seccomp filter the sandbox hands bwrap as BPF
  npm                 # tests/integration/test-sdk.sh installs the real openai and @anthropic-ai/sdk (Debian's nodejs has no npm; a NodeSource nodejs bundles it)
  git                 # tests/integration/test-sandbox-egress.sh: git clone over smart HTTPS (git http-backend) inside a sandbox
)

# Print the packages of CB_DEPS that are not installed, one per line.
missing_packages() {
  local pkg status
  for pkg in "${CB_DEPS[@]}"; do
    # A nodejs that bundles npm (NodeSource's) conflicts with Debian's npm package.
    [ "$pkg" = npm ] && command -v npm >/dev/null 2>&1 && continue
    # Multi-arch packages may print one status per architecture; any
    # "... ok installed" (install/hold) means installed.
    status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
    case "$status" in
      *"ok installed"*) ;;
      *) printf '%s\n' "$pkg" ;;
    esac
  done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found: this script supports Debian 12 only" >&2
  echo "install-deps: install these packages by hand: ${CB_DEPS[*]}" >&2
  exit 1
fi

mapfile -t MISSING < <(missing_packages)
if [ "${#MISSING[@]}" -eq 0 ]; then
  echo "install-deps: all ${#CB_DEPS[@]} packages already installed"
  exit 0
fi

echo "install-deps: missing packages: ${MISSING[*]}"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo is not available." >&2
    echo "install-deps: missing packages: ${MISSING[*]}" >&2
    echo "install-deps: as root run: apt-get update && apt-get install -y ${MISSING[*]}" >&2
    exit 1
  fi
fi

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get
     -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

# apt-get update only now that something is missing; retry once (mirrors flake).
if ! "${APT[@]}" -q update; then
  sleep 5
  "${APT[@]}" -q update || {
    echo "install-deps: apt-get update failed" >&2
    exit 1
  }
fi

# --no-install-recommends: everything needed is listed explicitly above.
if ! "${APT[@]}" -q -y --no-install-recommends install "${MISSING[@]}"; then
  echo "install-deps: apt-get install failed for: ${MISSING[*]}" >&2
  exit 1
fi

mapfile -t STILL < <(missing_packages)
if [ "${#STILL[@]}" -ne 0 ]; then
  echo "install-deps: still missing after install: ${STILL[*]}" >&2
  exit 1
fi
echo "install-deps: installed: ${MISSING[*]}"
exit 0
