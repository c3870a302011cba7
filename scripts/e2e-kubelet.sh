#!/usr/bin/env bash
# A real kubelet (standalone: static pods, no API server) runs pods on a private berthd,
# then on a private containerd 1.6 from Debian, and both results are printed side by
# side (test/e2e/kubelet.ts does the work). Then a one-node cluster (etcd, kube-apiserver,
# scheduler, controller-manager, the kubelet on berthd, kubectl, a PV on berth-csi) runs
# its scenarios against berthd (test/e2e/cluster.ts). Needs root and scripts/setup.sh's
# packages. Exits non-zero when a check fails on berth, berth-gates or the cluster.
# Results and logs go to $E2E_OUT (default: a temp dir, removed at exit unless E2E_KEEP=1).
#   bash scripts/e2e-kubelet.sh [--runtimes berth,containerd,berth-gates (the default; any of them)]
#                               [--no-cluster|--cluster-only]
# berth-gates: berth again with the kubelet's EventedPLEG and PodAndContainerStatsFromCRI on.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "e2e-kubelet: needs root" >&2; exit 1; }
runtimes="berth,containerd,berth-gates"
standalone=1 cluster=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runtimes) runtimes="${2:?--runtimes needs a value}"; shift 2 ;;
    --no-cluster) cluster=0; shift ;;
    --cluster-only) standalone=0; shift ;;
    *) echo "e2e-kubelet: unknown argument $1" >&2; exit 2 ;;
  esac
done

for bin in /usr/bin/openssl /usr/bin/script /usr/sbin/runc /usr/bin/conmon /usr/bin/catatonit /usr/bin/containerd /usr/bin/docker-registry /bin/busybox /usr/lib/cni/bridge /usr/lib/cni/portmap; do
  [ -x "$bin" ] || { echo "e2e-kubelet: $bin is missing (run scripts/setup.sh)" >&2; exit 1; }
done
[ -f dist/test/e2e/kubelet.js ] || npm run build >&2
targets="kubelet"
[ "$cluster" = 0 ] || targets="kubelet kube-apiserver kube-scheduler kube-controller-manager kubectl etcd csi-registrar"
kube="$(KUBE_TARGETS="$targets" bash scripts/build-kube.sh)"

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
    if [ -d "/proc/$pid" ] && grep -qaE 'kubelet|kube-|etcd|csi-registrar' "/proc/$pid/cmdline"; then kill -TERM "$pid" 2>/dev/null || true; sleep 2; kill -KILL "$pid" 2>/dev/null || true; fi
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
status=0 driver="" stopped=0
trap 'stopped=1; [ -z "$driver" ] || kill -TERM "$driver" 2>/dev/null || true' INT TERM HUP
drive() {
  E2E_PIDFILE_DIR="$run_dir/pids" node "$@" &
  driver=$!
  wait "$driver" || status=$?
  # A signal interrupts the first wait; wait again for the driver's own clean-up.
  while kill -0 "$driver" 2>/dev/null; do wait "$driver" || status=$?; done
  driver=""
}
[ "$standalone" = 0 ] || drive dist/test/e2e/kubelet.js --kubelet "$kube/kubelet" --runtimes "$runtimes" --out "$out"
if [ "$cluster" = 1 ] && [ "$stopped" = 0 ]; then
  mkdir -p "$out/cluster"
  drive dist/test/e2e/cluster.js --kube "$kube" --out "$out/cluster"
fi
exit "$status"
