#!/usr/bin/env bash
# berth's main job from a fresh machine: set-up, start berthd on its defaults
# (/etc/berth/berth.toml if present, socket unix:///run/berth/berth.sock), then ask it
# who it is and how it is, with berthctl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

socket=/run/berth/berth.sock
log=/var/log/berthd.log
if [ -S "$socket" ] && npx --no berthctl version >/dev/null 2>&1; then
  echo "demo: berthd is already serving on $socket"
else
  echo "demo: starting berthd (log: $log)"
  nohup npx --no berthd >>"$log" 2>&1 &
  for _ in $(seq 1 100); do
    npx --no berthctl version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

echo
echo "\$ berthctl version"
npx --no berthctl version
echo
echo "\$ berthctl info -o table"
npx --no berthctl info -o table
echo
echo "demo: berthd keeps running; stop it with: pkill -TERM -f dist/src/bin/berthd.js"
