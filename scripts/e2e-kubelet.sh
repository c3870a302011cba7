#!/usr/bin/env bash
# A real kubelet (standalone: static pods, no API server) runs pods on a private berthd,
# then on a private containerd 1.6 from Debian, and both results are printed side by
# side (test/e2e/kubelet.ts does the work). Needs root and scripts/setup.sh's packages.
# Exits non-zero when a check fails on berth or berth-gates. Results and logs go to $E2E_OUT (default:
# a temp dir, removed at exit unless E2E_KEEP=1).
#   bash scripts/e2e-kubelet.sh [--runtimes berth,containerd,berth-gates (the default; any of them)]
# berth-gates: berth again with the kubelet's EventedPLEG and PodAndContainerStatsFromCRI on.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "e2e-kubelet: needs root" >&2; exit 1; }
runtimes="berth,containerd,berth-gates"
if [ "${1:-}" = "--runtimes" ]; then runtimes="${2:?--runtimes needs a value}"; fi

for bin in /usr/sbin/runc /usr/bin/conmon /usr/bin/catatonit /usr/bin/containerd /usr/bin/docker-registry /bin/busybox /usr/lib/cni/bridge /usr/lib/cni/portmap; do
  [ -x "$bin" ] || { echo "e2e-kubelet: $bin is missing (run scripts/setup.sh)" >&2; exit 1; }
done
[ -f dist/test/e2e/kubelet.js ] || npm run build >&2
kube="$(bash scripts/build-kube.sh)"

run_dir="$(mktemp -d /tmp/e2e-kubelet-XXXXXX)"
out="${E2E_OUT:-$run_dir/out}"
mkdir -p "$out"

# The kubelet rewrites these kernel settings at start (protectKernelDefaults: false);
# put back what the machine had.
sysctls=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
for s in "${sysctls[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$run_dir/sysctls"

cleanup() {
  local code=$?
  # A kubelet left behind by a driver that was killed outright.
  for f in "$run_dir"/pids/*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    if [ -d "/proc/$pid" ] && grep -qa kubelet "/proc/$pid/cmdline"; then kill -TERM "$pid" 2>/dev/null || true; sleep 2; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  while IFS='=' read -r key value; do
    [ "$(sysctl -n "$key")" = "$value" ] || sysctl -q -w "$key=$value" >/dev/null || echo "e2e-kubelet: could not restore $key=$value" >&2
  done <"$run_dir/sysctls"
  if [ -n "${E2E_OUT:-}" ]; then
    rm -rf "$run_dir"
    echo "e2e-kubelet: results and logs in $out" >&2
  elif [ "${E2E_KEEP:-0}" = 1 ]; then
    rm -rf "$run_dir/pids" "$run_dir/sysctls"
    echo "e2e-kubelet: results and logs in $out" >&2
  else
    rm -rf "$run_dir"
  fi
  exit "$code"
}
trap cleanup EXIT
mkdir -p "$run_dir/pids"

# In the background so that a signal to this script reaches the driver, which then
# stops the kubelet and the runtime and removes what they made before it exits.
E2E_PIDFILE_DIR="$run_dir/pids" node dist/test/e2e/kubelet.js --kubelet "$kube/kubelet" --runtimes "$runtimes" --out "$out" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null || true' INT TERM HUP
status=0
wait "$driver" || status=$?
# A signal interrupts the first wait; wait again for the driver's own clean-up.
while kill -0 "$driver" 2>/dev/null; do wait "$driver" || status=$?; done
exit "$status"
