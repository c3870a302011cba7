#!/usr/bin/env bash
# Builds kubernetes-csi's csi-sanity (the CSI spec's test suite, a ginkgo binary) from the
# Go module proxy, once per version: test tooling only, never part of berth. Prints the
# path of the binary. Cached in $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools).
set -euo pipefail
source "$(dirname "$0")/go-tool-lib.sh"
CSI_TEST_VERSION="${CSI_TEST_VERSION:-v5.6.0}"
out="$go_tools_cache/csi-sanity-$CSI_TEST_VERSION"
if [ -x "$out/csi-sanity" ]; then
  echo "$out/csi-sanity"
  exit 0
fi
require_go build-csi-sanity
go_tool_workdir
src="$(module_source "$go_tool_work" github.com/kubernetes-csi/csi-test/v5 "$CSI_TEST_VERSION")"
mkdir -p "$out.tmp"
(cd "$src" && go build -o "$out.tmp/csi-sanity" ./cmd/csi-sanity) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/csi-sanity"
