#!/usr/bin/env bash
# The whole test suite from a fresh machine: set-up, then every test (unit tests and,
# as root, the integration tests against real runc, CNI plugins, registry, containerd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
status=0
npm test --silent || status=$?
# Nothing a test started may outlive the suite. A berthd of this checkout still running on
# a test's temporary config is a leak (a test's clean-up did not run): named, stopped, and
# the run fails.
tmp="${TMPDIR:-/tmp}"
leaked="$(pgrep -f -- "$(pwd)/dist/src/bin/berth(d|-csi)\.js .*${tmp%/}/" || true)"
if [ -n "$leaked" ]; then
  echo "test.sh: the suite left these berthd/berth-csi processes running:" >&2
  for pid in $leaked; do echo "  $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)" >&2; done
  kill -TERM $leaked 2>/dev/null || true
  status=1
fi
exit "$status"
