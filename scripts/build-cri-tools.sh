#!/usr/bin/env bash
# Builds cri-tools' crictl and critest (the CRI validation suite, a ginkgo test binary)
# from the Go module proxy, once per version: test tooling only, never part of berth.
# Prints the directory holding both binaries. Cached in $BERTH_TOOLS_CACHE (default
# /var/cache/berth-test-tools); Go's own build cache makes a rebuild quick.
set -euo pipefail
source "$(dirname "$0")/go-tool-lib.sh"
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.37.0}"
out="$go_tools_cache/cri-tools-$CRI_TOOLS_VERSION"
if [ -x "$out/crictl" ] && [ -x "$out/critest" ]; then
  echo "$out"
  exit 0
fi
require_go build-cri-tools
go_tool_workdir
src="$(module_source "$go_tool_work" sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION")"
mkdir -p "$out.tmp"
(cd "$src" && go build -o "$out.tmp/crictl" ./cmd/crictl && go test -c -o "$out.tmp/critest" ./cmd/critest) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
