#!/usr/bin/env bash
# Builds kubernetes-csi's csi-sanity (the CSI spec's test suite, a ginkgo binary) from the
# Go module proxy, once per version: test tooling only, never part of berth. Prints the
# path of the binary. Cached in $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools).
set -euo pipefail
CSI_TEST_VERSION="${CSI_TEST_VERSION:-v5.6.0}"
cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"
out="$cache/csi-sanity-$CSI_TEST_VERSION"
if [ -x "$out/csi-sanity" ]; then
  echo "$out/csi-sanity"
  exit 0
fi
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "build-csi-sanity: Go is not installed (expected at /usr/local/go)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mod="github.com/kubernetes-csi/csi-test/v5"
(cd "$work" && go mod init berth.test/csi-test >/dev/null 2>&1 && GOFLAGS=-mod=mod go mod download "$mod@$CSI_TEST_VERSION") >&2
src="$(cd "$work" && go env GOMODCACHE)/$mod@$CSI_TEST_VERSION"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$out.tmp"
(cd "$work/src" && go build -o "$out.tmp/csi-sanity" ./cmd/csi-sanity) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/csi-sanity"
