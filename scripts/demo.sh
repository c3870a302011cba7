#!/usr/bin/env bash
# berth's main job from a fresh machine: set-up, start berthd on its defaults
# (/etc/berth/berth.toml if present, socket unix:///run/berth/berth.sock), build a
# busybox image from Debian's busybox-static and import it, run a pod with a container
# that prints something, and show its output and status. A berthd the demo started is
# stopped at the end (that one only, by its pid); `--keep-berthd` leaves it running.
# A berthd already serving on the socket is used and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
case "${1:-}" in
  --keep-berthd) keep=true ;;
  "") ;;
  *) echo "usage: $0 [--keep-berthd]" >&2; exit 2 ;;
esac
bash scripts/setup.sh

ctl() { npx --no berthctl "$@"; }
socket=/run/berth/berth.sock
log=/var/log/berthd.log
berthd_pid=
if [ -S "$socket" ] && ctl version >/dev/null 2>&1; then
  echo "demo: berthd is already serving on $socket"
else
  echo "demo: starting berthd (log: $log)"
  # The program itself (its #! line carries its node flags), not npx: $! is then
  # berthd's own pid, the one process to stop later.
  nohup dist/src/bin/berthd.js >>"$log" 2>&1 &
  berthd_pid=$!
  for _ in $(seq 1 150); do
    ctl version >/dev/null 2>&1 && break
    kill -0 "$berthd_pid" 2>/dev/null || { echo "demo: berthd exited; see $log" >&2; exit 1; }
    sleep 0.2
  done
fi

work=$(mktemp -d)
finish() {
  rm -rf "$work"
  if [ -n "${berthd_pid:-}" ] && [ "$keep" = false ] && kill -0 "$berthd_pid" 2>/dev/null; then
    echo
    echo "demo: stopping the berthd it started (pid $berthd_pid)"
    kill -TERM "$berthd_pid"
    for _ in $(seq 1 100); do
      kill -0 "$berthd_pid" 2>/dev/null || return 0
      sleep 0.1
    done
    echo "demo: berthd (pid $berthd_pid) has not stopped after 10 s" >&2
  fi
}
trap finish EXIT
echo
echo "\$ berthctl version"
ctl version

echo
node scripts/build-busybox-image.mjs "$work/busybox.tar" localhost/busybox:demo
echo "\$ berthctl image import busybox.tar"
ctl image import "$work/busybox.tar"

# The kubelet's layout: /var/log/pods/<namespace>_<name>_<uid>, new for each run.
uid="demo-$(date +%s%N)"
cat >"$work/pod.json" <<JSON
{ "metadata": { "name": "demo", "namespace": "default", "uid": "$uid", "attempt": 1 },
  "hostname": "demo", "log_directory": "/var/log/pods/default_demo_$uid" }
JSON
cat >"$work/container.json" <<JSON
{ "metadata": { "name": "hello" }, "image": { "image": "localhost/busybox:demo" },
  "command": ["sh", "-c", "echo hello from a berth container; echo running on \$(hostname) as uid \$(id -u); uname -sr"],
  "log_path": "hello.log" }
JSON
echo
echo "\$ berthctl run --no-pull container.json pod.json"
id=$(ctl run --no-pull "$work/container.json" "$work/pod.json")
echo "$id"
for _ in $(seq 1 50); do
  [ "$(ctl inspect -o json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).status.state))')" = CONTAINER_EXITED ] && break
  sleep 0.2
done
echo
echo "\$ berthctl logs $id"
ctl logs "$id"
echo
echo "\$ berthctl ps -a"
ctl ps -a
echo
echo "\$ berthctl pods"
ctl pods
pod=$(ctl ps -a -q --no-trunc -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).containers.find(c=>c.id==="'"$id"'");console.log(c.podSandboxId)})')
echo
echo "\$ berthctl rmp --force $pod"
ctl rmp --force "$pod"
echo
if [ -n "$berthd_pid" ] && [ "$keep" = true ]; then
  echo
  echo "demo: berthd keeps running; stop it with: kill -TERM $berthd_pid"
fi
