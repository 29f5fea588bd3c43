#!/usr/bin/env bash
# `make fresh-check`: proves the README's two first-screen commands work on a fresh Debian 12
# machine that has rustup (issue 16). Run as root; slow (a fresh release build, then all of
# .ci/run), so not part of the tests.
#
# The machine: a Debian 12 root debootstrapped from Debian's packages (minbase plus what a
# rustup user has: curl, ca-certificates, and build-essential, the C linker rustup asks for;
# plus iproute2, in every non-minbase Debian; and the certificate authorities this machine
# adds in /usr/local/share/ca-certificates, for its network), cached as a tarball keyed by suite, mirror
# and package list beside installer_guest.rs's roots (SPINLET_GUEST_CACHE, default
# /var/tmp/spinlet-guest-cache) and unpacked afresh each run. Rust comes only through
# rustup here, so this machine's ~/.rustup and ~/.cargo/bin are bind-mounted read-only at
# /root/.rustup and /root/.cargo/bin; CARGO_HOME is the root's own /root/.cargo, so the
# registry is downloaded inside, and the build has its own target dir (the clone's
# target/: a new user's first build). The repository is a fresh `git clone` of HEAD (what
# is committed, not the working tree) at /work/main, with ../shared (the seeds some tests
# read) copied beside it.
#
# The root runs under chroot in new mount and PID namespaces (unshare), with /dev, /sys
# (cgroups read-write), a fresh /proc and a tmpfs /run: the tests need root, network
# namespaces, cgroups and loopback, which systemd-nspawn restricts (read-only cgroups and
# /proc/sys). It shares the host's network, for apt, crates.io and PyPI downloads; every
# process in it ends with the run (the PID namespace) and its mounts with it (the mount
# namespace).
#
# Steps, each with one progress line:
#   1. the README's first command, `cargo run --release -- server` (the crates fetched first,
#      with the network), in a network namespace of its own with only `lo` (so its ports
#      cannot meet another server's): waits until the API (GET /api/v1/nodes with the
#      kubeconfig's credentials: no kubectl yet on a fresh machine) shows the node Ready,
#      then stops it with SIGTERM and waits for it to exit;
#   2. `.ci/run`, exactly as CI runs it (apt installs what Debian lacks, then fmt, clippy and
#      `cargo test --workspace`).
# Ends with PASS or FAIL and the log's path; exits non-zero on any failure.
#
# Knobs (environment):
#   FRESH_SKIP_TESTS=1   step 1 only (a quick check of the first command)
#   FRESH_KEEP=1         keep the root (and its target dir) for debugging; it is printed
#   FRESH_DIR=<dir>      where runs go (default /var/tmp/spinlet-fresh-check)
#   FRESH_READY_TIMEOUT  seconds for step 1's build and node Ready (default 5400)
#   SPINLET_GUEST_CACHE  the debootstrap cache (shared with installer_guest.rs)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
PACKAGES=ca-certificates,curl,build-essential,iproute2
CACHE=${SPINLET_GUEST_CACHE:-/var/tmp/spinlet-guest-cache}
FRESH_DIR=${FRESH_DIR:-/var/tmp/spinlet-fresh-check}
READY_TIMEOUT=${FRESH_READY_TIMEOUT:-5400}
RUSTUP_DIR=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin

RUN=$FRESH_DIR/$(date -u +%Y%m%dT%H%M%SZ)
ROOT=$RUN/root
LOG=$RUN/fresh-check.log
STARTED=$(date +%s)

step() {
  printf '[fresh-check] %s (+%ss)\n' "$*" "$(($(date +%s) - STARTED))" | tee -a "$LOG"
}

finish() {
  local rc=$?
  trap - EXIT
  if [ "${FRESH_KEEP:-0}" = 1 ]; then
    echo "[fresh-check] kept the root: $ROOT" | tee -a "$LOG"
  elif [ -d "$ROOT" ]; then
    rm -rf --one-file-system "$ROOT"
  fi
  local took=$(($(date +%s) - STARTED))
  if [ "$rc" = 0 ]; then
    echo "[fresh-check] PASS in $((took / 60)) min $((took % 60)) s; log: $LOG" | tee -a "$LOG"
  else
    echo "[fresh-check] FAIL (exit $rc) after $((took / 60)) min $((took % 60)) s; log: $LOG" \
      | tee -a "$LOG"
    echo "[fresh-check] the log's last lines:"
    tail -n 30 "$LOG" | sed 's/^/  | /'
  fi
  exit "$rc"
}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "[fresh-check] $1 is missing: apt-get install -y $2" >&2
    exit 1
  }
}

if [ "$(id -u)" != 0 ]; then
  echo "[fresh-check] run as root: it debootstraps and chroots into a Debian 12 root" >&2
  exit 1
fi
need debootstrap debootstrap
need unshare util-linux
need git git
for d in "$RUSTUP_DIR" "$CARGO_BIN"; do
  [ -d "$d" ] || {
    echo "[fresh-check] no $d: rustup is what this check bind-mounts" >&2
    exit 1
  }
done

mkdir -p "$RUN" "$CACHE"
: >"$LOG"
trap finish EXIT
step "log: $LOG"

# The cached root, debootstrapped when missing (the recipe's hash names it).
RECIPE="debootstrap --variant=minbase --include=$PACKAGES $SUITE $MIRROR"
KEY=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)
TARBALL=$CACHE/debian12-fresh-$KEY.tar
if [ ! -f "$TARBALL" ]; then
  step "debootstrap: $RECIPE (first run; cached as $TARBALL)"
  BUILD=$CACHE/$KEY.root
  rm -rf --one-file-system "$BUILD"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$BUILD" "$MIRROR" >>"$LOG" 2>&1
  chroot "$BUILD" apt-get clean >>"$LOG" 2>&1
  tar -C "$BUILD" --numeric-owner -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
  rm -rf --one-file-system "$BUILD"
fi

step "unpack a fresh Debian 12 root from $TARBALL into $ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$TARBALL"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# This machine's own certificate authorities (a network that inspects TLS has one): the
# root trusts what the machine trusts, as the machine's own Debian would. Node.js reads
# only its bundled authorities unless NODE_EXTRA_CA_CERTS names more (npm behind such a
# network otherwise fails, as "Exit handler never called!"), so the machine's setting of it
# goes in too, pointing at the root's bundle, which now holds them.
CA_ENV=SPINLET_FRESH_CHECK=1
if [ -n "$(ls -A /usr/local/share/ca-certificates 2>/dev/null)" ]; then
  step "add this machine's CAs from /usr/local/share/ca-certificates to the root's trust"
  cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >>"$LOG" 2>&1
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
    CA_ENV=NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
  fi
fi
mkdir -p "$ROOT/root/.rustup" "$ROOT/root/.cargo/bin" "$ROOT/work"

HEAD=$(git -C "$REPO" rev-parse HEAD)
step "git clone of HEAD ($(git -C "$REPO" log -1 --format='%h %s' | cut -c1-60)) to /work/main"
git clone -q --no-local "$REPO" "$ROOT/work/main" >>"$LOG" 2>&1
git -C "$ROOT/work/main" checkout -q --detach "$HEAD"
if [ -d "$REPO/../shared" ]; then
  cp -a "$REPO/../shared" "$ROOT/work/shared"
fi

# Step 1, run in the root: the README's first command, until the node is Ready. A fresh
# machine has no kubectl before .ci/run installs one, so Ready is read from the API with
# the kubeconfig's own credentials, as kubectl would (expanded in the root, not here).
# shellcheck disable=SC2016
STEP1='set -eu
cd /work/main
cargo fetch
exec unshare --net sh -eu -c '\''
ip link set lo up
cargo run --release -- server >/var/log/spinlet-readme.log 2>&1 &
pid=$!
kubeconfig=/etc/spinlet/spinlet.yaml
creds=$(mktemp -d)
server=
ready() {
  [ -s "$kubeconfig" ] || return 1
  for f in certificate-authority-data:ca client-certificate-data:crt client-key-data:key; do
    sed -n "s/^ *${f%%:*}: //p" "$kubeconfig" | base64 -d >"$creds/${f#*:}" || return 1
  done
  server=$(sed -n "s/^ *server: //p" "$kubeconfig")
  curl -sf -m 10 --cacert "$creds/ca" --cert "$creds/crt" --key "$creds/key" \
    "$server/api/v1/nodes" >"$creds/nodes" || return 1
  tr -d " \n" <"$creds/nodes" \
    | grep -q -e "\"status\":\"True\",\"type\":\"Ready\"" -e "\"type\":\"Ready\",\"status\":\"True\""
}
deadline=$(($(date +%s) + READY_TIMEOUT))
until ready; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "cargo run --release -- server exited before the node was Ready:"
    tail -n 40 /var/log/spinlet-readme.log
    exit 1
  fi
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "no Ready node after READY_TIMEOUT s:"
    tail -n 40 /var/log/spinlet-readme.log
    kill -KILL "$pid"
    exit 1
  fi
  sleep 5
done
echo "node Ready (GET $server/api/v1/nodes with the credentials in $kubeconfig):"
tr -d " \n" <"$creds/nodes" | grep -o "\"name\":\"[^\"]*\"" | head -n 1
echo "stopping the server (SIGTERM to pid $pid)"
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 60 ]; then
    echo "the server did not exit within 60 s of SIGTERM:"
    tail -n 40 /var/log/spinlet-readme.log
    kill -KILL "$pid"
    exit 1
  fi
  sleep 1
done
wait "$pid" || echo "the server exited with status $?"
echo "--- the server log ---"
cat /var/log/spinlet-readme.log
'\'''
STEP1=${STEP1//READY_TIMEOUT/$READY_TIMEOUT}

# Step 2, run in the root: what CI runs.
STEP2='cd /work/main && exec .ci/run'

# Runs $1 (a shell script) as root in the root: new mount and PID namespaces, the host's
# network, a clean environment as a root login with rustup's PATH has.
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  unshare --mount --propagation private --pid --kill-child -- /bin/bash -euc '
    root=$1 rustup=$2 cargo_bin=$3 script=$4 ca_env=$5
    # The root is a mount point, as / is on a real machine: `ip -n` and `ip netns exec`
    # run `mount --make-rslave /`, which fails (EINVAL) on a plain directory.
    mount --bind "$root" "$root"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=755 tmpfs "$root/run"
    mount --bind "$rustup" "$root/root/.rustup"
    mount -o remount,bind,ro "$root/root/.rustup"
    mount --bind "$cargo_bin" "$root/root/.cargo/bin"
    mount -o remount,bind,ro "$root/root/.cargo/bin"
    exec chroot "$root" /usr/bin/env -i \
      PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
      CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup "$ca_env" \
      /bin/bash -c "$script"
  ' in-root "$ROOT" "$RUSTUP_DIR" "$CARGO_BIN" "$1" "$CA_ENV"
}

step "1/2 README: cargo run --release -- server (a fresh release build) until the API shows the node Ready, then SIGTERM"
echo "=== step 1: cargo run --release -- server ===" >>"$LOG"
in_root "$STEP1" >>"$LOG" 2>&1
step "1/2 done: the node was Ready and the server stopped on SIGTERM"

if [ "${FRESH_SKIP_TESTS:-0}" = 1 ]; then
  step "2/2 skipped (FRESH_SKIP_TESTS=1)"
  exit 0
fi

step "2/2 README: .ci/run (apt installs, fmt, clippy, cargo test --workspace)"
echo "=== step 2: .ci/run ===" >>"$LOG"
in_root "$STEP2" >>"$LOG" 2>&1
step "2/2 done: .ci/run passed"
