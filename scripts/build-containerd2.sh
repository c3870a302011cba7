#!/usr/bin/env bash
# Builds containerd 2.x's daemon (cmd/containerd) from the Go module proxy, once per
# version, for the side-by-side benches only: test tooling, never part of berth. It runs
# with the machine's runc and CNI config like Debian's containerd 1.6. Prints the path of
# the binary. Cached in $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools).
set -euo pipefail
CONTAINERD2_VERSION="${CONTAINERD2_VERSION:-v2.4.2}"
cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"
out="$cache/containerd-$CONTAINERD2_VERSION"
if [ -x "$out/containerd" ] && [ -x "$out/containerd-shim-runc-v2" ]; then
  echo "$out/containerd"
  exit 0
fi
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "build-containerd2: Go is not installed (expected at /usr/local/go)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
(cd "$work" && go mod init berth.test/containerd2 >/dev/null 2>&1 && GOFLAGS=-mod=mod go mod download "github.com/containerd/containerd/v2@$CONTAINERD2_VERSION") >&2
src="$(cd "$work" && go env GOMODCACHE)/github.com/containerd/containerd/v2@$CONTAINERD2_VERSION"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$out.tmp"
# No btrfs/devmapper headers needed: those snapshotters are left out; overlayfs is what the benches use.
(cd "$work/src" && CGO_ENABLED=1 go build -tags "no_btrfs no_devmapper no_zfs no_aufs" -o "$out.tmp/containerd" ./cmd/containerd \
  && CGO_ENABLED=0 go build -o "$out.tmp/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/containerd"
