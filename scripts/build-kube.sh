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
# KUBE_TARGETS may also name csi-registrar: scripts/kube-csi-registrar.go, a minimal kubelet
# plugin-registration (pluginregistration.v1) sidecar for berth-csi, built in this module
# because kubernetes-csi's node-driver-registrar is not served by the Go module proxy; and
# etcd: a tiny main calling go.etcd.io/etcd/server/v3/etcdmain.Main (as etcd's own main
# does) at the etcd version k8s.io/kubernetes itself requires, so it shares this build.
#
# Usage: build-kube.sh            (KUBE_VERSION, KUBE_TARGETS from the environment)
set -euo pipefail
source "$(dirname "$0")/go-tool-lib.sh"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
KUBE_TARGETS="${KUBE_TARGETS:-kubelet}"
out="$go_tools_cache/kube-$KUBE_VERSION"
missing=""
for t in $KUBE_TARGETS; do [ -x "$out/$t" ] || missing="$missing $t"; done
if [ -z "$missing" ]; then
  echo "$out"
  exit 0
fi
require_go build-kube
staging_version="v0.${KUBE_VERSION#v1.}"
here="$(cd "$(dirname "$0")" && pwd)"
go_tool_workdir
work="$go_tool_work"
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
  # "csi-registrar" is not a kubernetes command but a small main in this module (below).
  pkgs=""
  {
    echo "//go:build tools"
    echo "package tools"
    echo "import ("
    for t in $missing; do
      case "$t" in
        csi-registrar) echo "	_ \"google.golang.org/grpc\""; echo "	_ \"k8s.io/kubelet/pkg/apis/pluginregistration/v1\""
                       pkgs="$pkgs ./csi-registrar" ;;
        etcd) echo "	_ \"go.etcd.io/etcd/server/v3/etcdmain\""; pkgs="$pkgs ./etcd" ;;
        *) echo "	_ \"k8s.io/kubernetes/cmd/$t\""; pkgs="$pkgs k8s.io/kubernetes/cmd/$t" ;;
      esac
    done
    echo ")"
  } >tools.go
  case " $missing " in *" csi-registrar "*) mkdir csi-registrar; cp "$here/kube-csi-registrar.go" csi-registrar/main.go ;; esac
  case " $missing " in *" etcd "*) mkdir etcd
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >etcd/main.go ;; esac
  go mod tidy
  ldflags="-s -w"
  for kv in gitVersion="$KUBE_VERSION" gitMajor=1 gitMinor="$(echo "$KUBE_VERSION" | cut -d. -f2)" gitTreeState=clean \
            buildDate="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  mkdir -p "$out"
  # One `go build` for every missing command, so the packages they share compile once.
  start=$(date +%s)
  rm -rf "$out/.tmp" && mkdir "$out/.tmp"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/.tmp/" $pkgs
  for t in $missing; do mv "$out/.tmp/$t" "$out/$t"; done
  rmdir "$out/.tmp"
  echo "build-kube:$missing $KUBE_VERSION built in $(( $(date +%s) - start ))s" >&2
) >&2
echo "$out"
