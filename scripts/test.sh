#!/usr/bin/env bash
# The whole test suite from a fresh machine: set-up, then every test (unit tests and,
# as root, the integration tests against real runc, CNI plugins, registry, containerd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test --silent
