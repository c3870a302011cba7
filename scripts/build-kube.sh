#!/usr/bin/env bash
# Builds Kubernetes' own binaries (the kubelet; with KUBE_TARGETS also kubectl,
# kube-apiserver, kube-scheduler, kube-controller-manager) from the Go module proxy at
# one pinned version: test tooling only, never part of berth. Prints the directory
# holding them. Cached in $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools);
# Go's own module and build caches make a rebuild after a cache wipe quick.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at
# v0.0.0 and replaces them with ./staging/src/..., which its module zip does not hold, so
# it cannot be built inside its own module source. Instead a generated go.mod requires
# k8s.io/kubernetes vX.Y.Z and replaces every staging module with its published v0.Y.Z.
#
# Usage: build-kube.sh            (KUBE_VERSION, KUBE_TARGETS from the environment)
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
KUBE_TARGETS="${KUBE_TARGETS:-kubelet}"
cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"
out="$cache/kube-$KUBE_VERSION"
missing=""
for t in $KUBE_TARGETS; do [ -x "$out/$t" ] || missing="$missing $t"; done
if [ -z "$missing" ]; then
  echo "$out"
  exit 0
fi
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build-kube: Go is not installed (expected at /usr/local/go)" >&2; exit 1; }
staging_version="v0.${KUBE_VERSION#v1.}"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
(
  cd "$work"
  # The kubernetes go.mod: its go directive, and the staging modules it requires at v0.0.0.
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  [ -f "$gomod" ] || { echo "build-kube: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
  goline="$(grep -m1 '^go ' "$gomod")"
  staging="$(awk '/^\tk8s.io\/[^ ]+ v0.0.0$/ {print $1}' "$gomod" | sort -u)"
  {
    echo "module berth.test/kube"
    echo
    echo "$goline"
    grep '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >go.mod
  # Anchor the kubernetes packages in this module so `go mod tidy` keeps what they need.
  {
    echo "//go:build tools"
    echo "package tools"
    echo "import ("
    for t in $missing; do echo "	_ \"k8s.io/kubernetes/cmd/$t\""; done
    echo ")"
  } >tools.go
  go mod tidy
  ldflags="-s -w"
  for kv in gitVersion="$KUBE_VERSION" gitMajor=1 gitMinor="$(echo "$KUBE_VERSION" | cut -d. -f2)" gitTreeState=clean \
            buildDate="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  mkdir -p "$out"
  for t in $missing; do
    start=$(date +%s)
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$t.tmp" "k8s.io/kubernetes/cmd/$t"
    mv "$out/$t.tmp" "$out/$t"
    echo "build-kube: $t $KUBE_VERSION built in $(( $(date +%s) - start ))s" >&2
  done
) >&2
echo "$out"
