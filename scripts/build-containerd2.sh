#!/usr/bin/env bash
# Builds containerd 2.x's daemon (cmd/containerd) from the Go module proxy, once per
# version, for the side-by-side benches only: test tooling, never part of berth. It runs
# with the machine's runc and CNI config like Debian's containerd 1.6. Prints the path of
# the binary. Cached in $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools).
set -euo pipefail
source "$(dirname "$0")/go-tool-lib.sh"
CONTAINERD2_VERSION="${CONTAINERD2_VERSION:-v2.4.2}"
out="$go_tools_cache/containerd-$CONTAINERD2_VERSION"
if [ -x "$out/containerd" ] && [ -x "$out/containerd-shim-runc-v2" ]; then
  echo "$out/containerd"
  exit 0
fi
require_go build-containerd2
go_tool_workdir
src="$(module_source "$go_tool_work" github.com/containerd/containerd/v2 "$CONTAINERD2_VERSION")"
mkdir -p "$out.tmp"
# No btrfs/devmapper headers needed: those snapshotters are left out; overlayfs is what the benches use.
(cd "$src" && CGO_ENABLED=1 go build -tags "no_btrfs no_devmapper no_zfs no_aufs" -o "$out.tmp/containerd" ./cmd/containerd \
  && CGO_ENABLED=0 go build -o "$out.tmp/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/containerd"
