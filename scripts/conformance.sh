#!/usr/bin/env bash
# The CRI conformance harness: cri-tools' critest (v1.37.0) against a private berthd and,
# as the oracle, against Debian's containerd, fully offline. Prints a side-by-side
# summary and exits non-zero when a spec that passes on containerd fails on berth (minus
# the named skips in test/conformance/skips.ts). Run as root after scripts/setup.sh:
#   bash scripts/conformance.sh
# Environment: BERTH_CONFORMANCE_BENCH=0 skips the short `critest -benchmark` run;
# BERTH_CONFORMANCE_RUNTIMES=berth (or containerd) runs one runtime only;
# BERTH_CONFORMANCE_FOCUS=REGEX passes -ginkgo.focus (for quick iterations);
# BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools) holds what is built once:
# critest/crictl, the static busybox and the stand-in programs the images are made of.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "conformance: must run as root (it starts runtimes, bridges and iptables rules)" >&2
  exit 2
fi

# Debian packages the harness needs beyond scripts/setup.sh: a C toolchain for the
# static busybox and stand-ins, dpkg-dev (with bzip2, xz-utils) for `apt-get source`,
# util-linux's ipcmk (the host IPC specs make a shared memory segment on the host),
# procps's pkill -P for the clean-up.
PACKAGES=(build-essential dpkg-dev bzip2 xz-utils util-linux procps)
bash scripts/ensure-debian-packages.sh conformance "${PACKAGES[@]}"
[ -f dist/src/bin/berthd.js ] || bash scripts/setup.sh

mkdir -p "$cache"

# A full busybox (upstream's defconfig: every applet, pgrep and ipcs among them, and
# FEATURE_SH_STANDALONE off) built static from Debian's source package. Cached; the
# image gets it with hard-linked applets (see test/conformance/images.ts).
BUSYBOX_RECIPE=v2
build_busybox() {
  local out="$cache/busybox-$BUSYBOX_RECIPE"
  if [ -x "$out/busybox" ] && [ -s "$out/applets" ]; then
    return
  fi
  echo "conformance: building busybox from Debian's source package (once; cached in $out)"
  # A fixed build path and time, so that the binary (and the image digests) repeat.
  local work=/var/tmp/berth-busybox-build
  rm -rf "$work" && mkdir -p "$work"
  # apt-get source needs deb-src entries: the same URIs and suites as the machine's deb
  # entries, in a file of our own, removed again after the download.
  local srcfile=/etc/apt/sources.list.d/berth-conformance-src.sources
  sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$srcfile"
  if ! apt-cache showsrc busybox 2>/dev/null | grep -q '^Package: busybox'; then
    apt-get update -qq
  fi
  # apt checked the files against the signed Sources index; dpkg-source only warns
  # that it has no key for the .dsc's own signature.
  chmod 755 "$work"
  (cd "$work" && apt-get source -qq --download-only busybox && dpkg-source -x ./*.dsc src) >"$work/fetch.log" 2>&1 \
    || { rm -f "$srcfile"; cat "$work/fetch.log" >&2; exit 1; }
  rm -f "$srcfile"
  (
    cd "$work/src"
    export KCONFIG_NOTIMESTAMP=1 SOURCE_DATE_EPOCH=1704067200 KBUILD_BUILD_TIMESTAMP='2024-01-01' LC_ALL=C TZ=UTC
    make -s defconfig >/dev/null
    sed -i -E \
      -e 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' \
      -e 's/^CONFIG_FEATURE_SH_STANDALONE=y/# CONFIG_FEATURE_SH_STANDALONE is not set/' \
      -e 's/^CONFIG_FEATURE_PREFER_APPLETS=y/# CONFIG_FEATURE_PREFER_APPLETS is not set/' \
      -e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' \
      .config
    { yes '' || true; } | make -s oldconfig >/dev/null
    make -s -j"$(nproc)" busybox >/dev/null 2>"$work/build.log" || { tail -40 "$work/build.log" >&2; exit 1; }
  )
  local bb="$work/src/busybox"
  for applet in pgrep ipcs sh sleep; do
    "$bb" --list | grep -qx "$applet" || { echo "conformance: built busybox lacks $applet" >&2; exit 1; }
  done
  if grep -q '^CONFIG_FEATURE_SH_STANDALONE=y' "$work/src/.config"; then
    echo "conformance: busybox still has FEATURE_SH_STANDALONE" >&2
    exit 1
  fi
  mkdir -p "$out.tmp"
  cp "$bb" "$out.tmp/busybox"
  "$bb" --list-full | sort >"$out.tmp/applets"
  (cd "$work" && ls ./*.dsc | sed 's|^\./||') >"$out.tmp/source"
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
}

# The stand-in programs (test/conformance/standins/*.c), static, cached by source hash.
build_standins() {
  local src="$repo/test/conformance/standins"
  local hash
  hash=$(cat "$src"/*.c | sha256sum | cut -c1-16)
  local out="$cache/standins-$hash"
  [ -x "$out/nonewprivs" ] && return
  echo "conformance: compiling the stand-in programs into $out"
  mkdir -p "$out.tmp"
  local cc=(gcc -static -O2 -s -Wall -Wextra -ffile-prefix-map="$src"=.)
  "${cc[@]}" -DNGINX -DPORT=80 -o "$out.tmp/nginx" "$src/webserver.c"
  "${cc[@]}" -DNGINX -DPORT=12003 -o "$out.tmp/nginx-hostnet" "$src/webserver.c"
  "${cc[@]}" -DHTTPD -DPORT=80 -o "$out.tmp/httpd" "$src/webserver.c"
  "${cc[@]}" -o "$out.tmp/nonewprivs" "$src/nonewprivs.c"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_busybox
build_standins
tools="$(bash scripts/build-cri-tools.sh | tail -1)"
standins="$cache/standins-$(cat test/conformance/standins/*.c | sha256sum | cut -c1-16)"

# The rest (registry, images, pod network, both runtimes, critest, the summary) is
# test/conformance/run.ts; it undoes everything it set up on exit, error or signal.
# This trap is the net under it: it stops the runner and sweeps what a killed runner
# left (recorded in its leftovers file as it goes).
run_dir="$(mktemp -d /tmp/berth-conformance-XXXXXX)"
# Searchable by others: containers in a pod's user namespace are set up by their
# (unprivileged on the host) root, which must pass the dirs above berthd's state dir.
chmod 711 "$run_dir"
runner_pid=""
sweep() {
  local status=$?
  trap - EXIT INT TERM
  set +e # best effort from here: every step runs whatever the one before it did
  if [ -n "$runner_pid" ] && kill -0 "$runner_pid" 2>/dev/null; then
    kill -TERM "$runner_pid" 2>/dev/null || true
    wait "$runner_pid" 2>/dev/null || true
  fi
  # Processes of this run the runner could not stop (runtimes, shims, conmon, registry:
  # their command lines name the run dir), their children first.
  local pids p
  pids=$(grep -lsF "$run_dir" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | grep -vx "$$" || true)
  for p in $pids; do
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ -s "$run_dir/leftovers" ]; then
    tac "$run_dir/leftovers" | while read -r kind a b; do
      case "$kind" in
        pid) kill -KILL "$a" 2>/dev/null || true ;;
        iptables)
          iptables -D FORWARD -s "$a" ! -d "$a" -j DROP 2>/dev/null || true
          # containerd's pod network namespaces (in /run/netns) on this subnet.
          for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
            ip -n "$ns" -4 -o addr 2>/dev/null | grep -qF " ${a%.0/24}." && ip netns del "$ns" 2>/dev/null
          done
          ;;
        link) ip link del "$a" 2>/dev/null || true ;;
      esac
    done
  fi
  # Mounts a killed runtime left below the run dir, deepest first.
  awk -v d="$run_dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ "${BERTH_CONFORMANCE_KEEP:-0}" = 1 ]; then
    echo "conformance: kept $run_dir"
  else
    # Keep the reports and logs beside the run, drop the runtimes' state.
    rm -rf "$run_dir"/tmp "$run_dir"/work
  fi
  echo "conformance: wall time $(( $(date +%s) - started )) s; reports and logs in $run_dir"
  exit "$status"
}
trap sweep EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

node dist/test/conformance/run.js \
  --critest "$tools/critest" \
  --busybox "$cache/busybox-$BUSYBOX_RECIPE" \
  --standins "$standins" \
  --run-dir "$run_dir" &
runner_pid=$!
set +e
wait "$runner_pid"
status=$?
set -e
runner_pid=""
exit "$status"
