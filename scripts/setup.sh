#!/usr/bin/env bash
# Everything berth needs on a fresh Debian machine (root, Node 20): Debian packages
# (apt-get update runs once, only when something is missing), npm packages, the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the OCI runtimes, conmon, CNI plugins, iptables, a registry and
# busybox for tests, containerd as the interop oracle, attr (setfattr: overlay opaque
# dirs and layer xattrs), zstd (test layers), protoc for the build.
PACKAGES=(
  runc crun runsc conmon catatonit
  containernetworking-plugins iptables iproute2
  busybox-static docker-registry containerd
  attr zstd
  protobuf-compiler ca-certificates
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's containerd package may start its service; berth's tests run their own
# containerd on private paths, so a system one is harmless and left alone.

echo "setup: npm packages"
npm ci --no-audit --no-fund --loglevel=error

echo "setup: build"
npm run build --silent
