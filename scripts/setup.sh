#!/usr/bin/env bash
# Everything berth needs on a fresh Debian machine (root, Node 20): Debian packages
# (apt-get update runs once, only when something is missing), npm packages, the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the OCI runtimes, conmon, CNI plugins, iptables, a registry and
# busybox for tests, containerd as the interop oracle, attr (setfattr: overlay opaque
# dirs and layer xattrs), zstd (test layers), protoc and its well-known protos
# (libprotobuf-dev: csi.proto imports google/protobuf/descriptor.proto) for the build;
# e2fsprogs (mkfs.ext4, resize2fs, e2fsck, dumpe2fs), xfsprogs (mkfs.xfs, xfs_growfs) and
# util-linux (losetup, fsfreeze, blockdev) for berth-csi; openssl (the e2e cluster's
# certificates) and bsdutils (script: a terminal for kubectl exec -it) for
# scripts/e2e-kubelet.sh; strace (test/oci-runtime-start.test.ts slows runc's init with
# its syscall delay).
PACKAGES=(
  runc crun runsc conmon catatonit
  containernetworking-plugins iptables iproute2
  busybox-static docker-registry containerd
  attr zstd criu
  e2fsprogs xfsprogs util-linux openssl bsdutils
  protobuf-compiler libprotobuf-dev ca-certificates
  esbuild strace
)

bash scripts/ensure-debian-packages.sh setup "${PACKAGES[@]}"

# Debian's containerd package may start its service; berth's tests run their own
# containerd on private paths, so a system one is harmless and left alone.

# A default pod network when the machine has none: bridge berth0 with host-local
# addresses in 10.88.0.0/16 and portmap (berthd brings each pod's lo up itself, as
# containerd does, rather than chaining the loopback plugin on eth0). No masquerade:
# pods reach each other and the host, and nothing is NATed to the outside for them.
# The config is added only when the dir holds no .conflist, .conf or .json at all (a node
# with another network keeps it alone, and a second run changes nothing).
cni_configs=()
if [ -d /etc/cni/net.d ]; then
  shopt -s nullglob
  cni_configs=(/etc/cni/net.d/*.conflist /etc/cni/net.d/*.conf /etc/cni/net.d/*.json)
  shopt -u nullglob
fi
if [ "${#cni_configs[@]}" -eq 0 ]; then
  echo "setup: installing the default CNI config /etc/cni/net.d/10-berth.conflist"
  mkdir -p /etc/cni/net.d
  cat >/etc/cni/net.d/10-berth.conflist <<'CNI'
{
  "cniVersion": "1.0.0",
  "name": "berth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "berth0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CNI
fi

echo "setup: npm packages"
npm ci --no-audit --no-fund --loglevel=error

echo "setup: build"
npm run build --silent
