#!/usr/bin/env bash
# bench/berthctl-startup: how long `berthctl version` takes against one berthd, as
# installed by scripts/install.sh (into a temporary DESTDIR): the command on PATH (the V8
# startup snapshot), its fallback (the code-cached bundle), beside crictl (built by the
# conformance harness, when there) and a bare `node -e 0`; with --baseline, another
# built checkout's installed berthctl too. The variants run interleaved, round by round,
# so a machine shared with other work slows all alike; each call is timed by bash's
# `time`: medians of wall and of CPU (user+sys, the steadier one on a loaded machine).
# Never fails on time. As root (berthd).
#   bash bench/berthctl-startup.sh [--rounds N] [--baseline OTHER_CHECKOUT]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=20
baseline=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --baseline) baseline=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--baseline OTHER_CHECKOUT]" >&2; exit 2 ;;
  esac
done
[ -x dist/src/bin/berthd.js ] || { echo "berthctl-startup: build first (npm run build)" >&2; exit 1; }

work=$(mktemp -d /tmp/berthctl-startup.XXXXXX)
berthd_pid=
cleanup() {
  if [ -n "$berthd_pid" ]; then kill "$berthd_pid" 2>/dev/null; wait "$berthd_pid" 2>/dev/null || true; fi
  # berthd's own mounts under its state (namespace pins, its read-only bind points).
  awk -v dir="$work/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r point; do umount -l "$point"; done
  rm -rf "$work"
}
trap cleanup EXIT

DESTDIR=$work/this PREFIX=/opt/berth bash scripts/install.sh >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 1; }
if [ -n "$baseline" ]; then
  (cd "$baseline" && DESTDIR=$work/base PREFIX=/opt/berth bash scripts/install.sh) >"$work/install-base.log" 2>&1 || { cat "$work/install-base.log" >&2; exit 1; }
fi

mkdir -p "$work/net.d"
cat >"$work/berth.toml" <<EOF
listen = "unix://$work/berth.sock"
root = "$work/root"
state = "$work/state"
log_level = "warn"
[cni]
conf_dir = "$work/net.d"
EOF
dist/src/bin/berthd.js --config "$work/berth.toml" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
export CRI_CONFIG_FILE=/dev/null
endpoint=unix://$work/berth.sock
for _ in $(seq 100); do
  "$work/this/opt/berth/bin/berthctl" -r "$endpoint" version >/dev/null 2>&1 && break
  sleep 0.1
done

variants=()
crictl=/var/cache/berth-test-tools/cri-tools-v1.37.0/crictl
[ -x "$crictl" ] && variants+=("crictl=$crictl -r $endpoint version")
variants+=("node-e-0=node -e 0")
[ -n "$baseline" ] && variants+=("baseline=$work/base/opt/berth/bin/berthctl -r $endpoint version")
[ -f "$work/this/opt/berth/lib/berth/dist/berthctl-launcher.cjs" ] &&
  variants+=("bundle=$work/this/opt/berth/lib/berth/dist/berthctl-launcher.cjs -r $endpoint version")
variants+=("berthctl=$work/this/opt/berth/bin/berthctl -r $endpoint version")

declare -A wall cpu
TIMEFORMAT='%R %U %S'
for ((i = 0; i < rounds; i++)); do
  for spec in "${variants[@]}"; do
    name=${spec%%=*}
    t=$({ time eval "${spec#*=}" >/dev/null 2>&1; } 2>&1)
    read -r r u s <<<"$t"
    wall[$name]+="$r "
    cpu[$name]+="$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }') "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { printf "%7.1f", a[int((NR + 1) / 2)] * 1000 }'; }
echo "berthctl version, $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg); medians in ms"
printf '%-10s %8s %8s\n' '' wall cpu
for spec in "${variants[@]}"; do
  name=${spec%%=*}
  printf '%-10s %8s %8s\n' "$name" "$(echo "${wall[$name]}" | median)" "$(echo "${cpu[$name]}" | median)"
done
