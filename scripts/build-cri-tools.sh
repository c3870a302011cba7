#!/usr/bin/env bash
# Builds cri-tools' crictl and critest (the CRI validation suite, a ginkgo test binary)
# from the Go module proxy, once per version: test tooling only, never part of berth.
# Prints the directory holding both binaries. Cached in $BERTH_TOOLS_CACHE (default
# /var/cache/berth-test-tools); Go's own build cache makes a rebuild quick.
set -euo pipefail
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.37.0}"
cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"
out="$cache/cri-tools-$CRI_TOOLS_VERSION"
if [ -x "$out/crictl" ] && [ -x "$out/critest" ]; then
  echo "$out"
  exit 0
fi
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "build-cri-tools: Go is not installed (expected at /usr/local/go)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# The module's own go.mod and go.sum pin its dependencies; build it from a writable copy.
(cd "$work" && go mod init berth.test/cri-tools >/dev/null 2>&1 && GOFLAGS=-mod=mod go mod download "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION") >&2
src="$(cd "$work" && go env GOMODCACHE)/sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$out.tmp"
(cd "$work/src" && go build -o "$out.tmp/crictl" ./cmd/crictl && go test -c -o "$out.tmp/critest" ./cmd/critest) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
