#!/usr/bin/env bash
# Installs berth on a node from this checkout (built: scripts/setup.sh or npm run build):
#   PREFIX/lib/berth/            the package: dist/src, package.json, production node_modules
#   PREFIX/bin/berthd, berthctl, berth-csi
#                                commands that run the installed package with Node
#   /etc/berth/berth.toml        `berthd config` (the defaults), only when there is none
#   /etc/systemd/system/berthd.service
# then, on a real install with systemd running, `systemctl daemon-reload` (the service is
# not started: `systemctl enable --now berthd`). `--uninstall` removes what it installed
# (stopping and disabling the service first) and keeps /etc/berth and /var/lib/berth.
#
#   bash scripts/install.sh [--uninstall]
#   PREFIX=/usr/local (default) DESTDIR= (a staging root, e.g. for a package or a test:
#   everything goes under DESTDIR, nothing on the machine is touched)
#   NODE=path of node (default: the node on PATH; must be Node 20 or newer)
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
case "$PREFIX" in /*) ;; *) echo "install: PREFIX must be an absolute path (got $PREFIX)" >&2; exit 2 ;; esac
if [ -n "$DESTDIR" ]; then
  mkdir -p "$DESTDIR"
  DESTDIR=$(cd "$DESTDIR" && pwd)
fi

uninstall=false
case "${1:-}" in
  --uninstall) uninstall=true ;;
  "") ;;
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--uninstall]" >&2; exit 2 ;;
esac

bindir=$DESTDIR$PREFIX/bin
libdir=$DESTDIR$PREFIX/lib/berth
confdir=$DESTDIR/etc/berth
unit=$DESTDIR/etc/systemd/system/berthd.service
commands=(berthd berthctl berth-csi)
# Written into every file the script installs, so --uninstall removes only its own.
marker="installed by berth's scripts/install.sh"

systemd_here() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ "$uninstall" = true ]; then
  if systemd_here && [ -f "$unit" ]; then
    # Containers keep running: their conmon processes are not in berthd's cgroup.
    systemctl disable --now berthd.service 2>/dev/null || true
  fi
  for cmd in "${commands[@]}"; do
    if { [ -f "$bindir/$cmd" ] && grep -q "$marker" "$bindir/$cmd"; } || [ "$(readlink "$bindir/$cmd" 2>/dev/null)" = "../lib/berth/dist/$cmd.mjs" ]; then rm -f "$bindir/$cmd"; echo "install: removed $bindir/$cmd"; fi
  done
  if [ -f "$unit" ] && grep -q "$marker" "$unit"; then rm -f "$unit"; echo "install: removed $unit"; fi
  if [ -f "$libdir/.berth-install" ]; then rm -rf "$libdir"; echo "install: removed $libdir"; fi
  systemd_here && systemctl daemon-reload || true
  echo "install: kept $confdir (configuration) and berthd's root and state (/var/lib/berth, /run/berth by default)"
  exit 0
fi

NODE=${NODE:-$(command -v node || true)}
if [ -z "$NODE" ] || ! "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "install: Node 20 or newer is needed (set NODE=/path/to/node)" >&2
  exit 1
fi
NODE=$(readlink -f "$NODE")
if [ ! -x dist/src/bin/berthd.js ]; then
  echo "install: building first (npm run build)"
  npm run build --silent
fi

# The package: a fresh copy each time (the old one is replaced whole, never mixed).
echo "install: $libdir"
mkdir -p "${libdir%/*}"
staging=$(mktemp -d "${libdir%/*}/.berth-install.XXXXXX")
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/dist"
cp -a dist/src "$staging/dist/src"
cp -a package.json package-lock.json "$staging/"
# Production dependencies only: the ones `npm ls --omit=dev` names, copied as they are.
mkdir -p "$staging/node_modules"
# (npm ls exits non-zero over an extraneous package, yet lists the tree: its list counts.)
deps=$(npm ls --omit=dev --all --parseable 2>/dev/null || true)
while read -r dir; do
  [ "$dir" = "$checkout" ] || [ -z "$dir" ] && continue
  rel=${dir#"$checkout"/}
  [ -e "$staging/$rel" ] && continue
  mkdir -p "$staging/$(dirname "$rel")"
  cp -a "$dir" "$staging/$rel"
done <<<"$deps"
for pkg in $(node -p 'Object.keys(require("./package.json").dependencies).join(" ")'); do
  [ -e "$staging/node_modules/$pkg/package.json" ] || { echo "install: dependency $pkg is missing: run npm ci first" >&2; exit 1; }
done
# berthctl starts several times faster as one file than as ~300 modules resolved and
# read one by one (every call of a crictl-style script pays it), and faster still from
# a V8 startup snapshot of that file with its modules already evaluated:
# - dist/berthctl.blob: `node --build-snapshot` of the bundled src/bin/berthctl-snapshot.js
#   (its comment says what is in it). A snapshot runs only on the node that made it,
#   without V8 flags: the command below (PREFIX/bin/berthctl) uses it while that node
#   binary is unchanged (its mtime, kept on dist/berthctl.blob.node) and NODE_OPTIONS is
#   empty, and otherwise
# - dist/berthctl.cjs through scripts/berthctl-launcher.cjs, with a V8 code cache made
#   now by one run of it (the launcher's comment says why).
# Both are bundled by esbuild (Debian's package; scripts/setup.sh installs it) as
# CommonJS; builtins are required through process.getBuiltinModule, which the snapshot
# builder's `require` is not (it warns about modules it has not verified, at run time
# too). Without esbuild berthctl runs unbundled, as berthd does.
bundled=false
snapshot=false
if command -v esbuild >/dev/null; then
  bundle() {
    esbuild "$staging/dist/src/bin/$1.js" --bundle --platform=node --format=cjs --target=node20 \
      --outfile="$staging/dist/$2" --log-level=error \
      --define:import.meta.url=berthctlBundleUrl \
      --banner:js="// berthctl: $marker
var require = ((required) => (id) => process.getBuiltinModule(id) ?? required(id))(require);
const berthctlBundleUrl = require('node:url').pathToFileURL(__filename).href;"
  }
  bundle berthctl berthctl.cjs
  sed "1s|^#!.*|#!$NODE|" "$checkout/scripts/berthctl-launcher.cjs" >"$staging/dist/berthctl-launcher.cjs"
  chmod 0755 "$staging/dist/berthctl-launcher.cjs"
  # The cache: a call that fails at once (no such socket) still compiles the client's
  # whole path, from flag parsing to the gRPC call.
  BERTHCTL_WRITE_CODE_CACHE=1 CRI_CONFIG_FILE=/dev/null "$NODE" "$staging/dist/berthctl-launcher.cjs" \
    -r "unix://$staging/no-such.sock" -t 1s version >/dev/null 2>&1 || true
  [ -s "$staging/dist/berthctl.cjs.cache" ] || echo "install: no V8 code cache was made for berthctl (it starts without one)"
  bundled=true
  bundle berthctl-snapshot berthctl-snapshot.cjs
  if (cd "$staging/dist" && NODE_OPTIONS= "$NODE" --snapshot-blob berthctl.blob --build-snapshot berthctl-snapshot.cjs) >"$staging/snapshot.log" 2>&1 &&
    CRI_CONFIG_FILE=/dev/null NODE_OPTIONS= "$NODE" --snapshot-blob "$staging/dist/berthctl.blob" berthctl --version >/dev/null 2>&1; then
    touch -r "$NODE" "$staging/dist/berthctl.blob.node"
    snapshot=true
  else
    echo "install: no V8 startup snapshot for berthctl (it starts from the bundle):"
    sed 's/^/  /' "$staging/snapshot.log"
    rm -f "$staging/dist/berthctl.blob"
  fi
  rm -f "$staging/snapshot.log" "$staging/dist/berthctl-snapshot.cjs"
else
  echo "install: esbuild not found: berthctl runs unbundled (slower to start; apt-get install esbuild)"
fi
echo "$marker from $checkout on $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$staging/.berth-install"
chmod 0755 "$staging"
rm -rf "$libdir"
mv "$staging" "$libdir"
trap - EXIT

# Commands: each finds the package beside its own bin dir (so a DESTDIR staging works
# too) and runs the entry point through its #! line (which carries berthd's node flags),
# with the node found at install time first on PATH.
mkdir -p "$bindir"
for cmd in "${commands[@]}"; do
  rm -f "$bindir/$cmd"
  if [ "$cmd" = berthctl ] && [ "$snapshot" = true ]; then
    # sh with nothing but builtins before node: the package is found beside the bin dir
    # this file was called by (readlink only when it was called through a link elsewhere).
    cat >"$bindir/$cmd" <<EOF
#!/bin/sh
# berthctl: $marker
# From the V8 startup snapshot while the node that made it is unchanged, else the bundle.
dist=\${0%/*}/../lib/berth/dist
[ -f "\$dist/berthctl.blob" ] || dist=\$(dirname "\$(readlink -f "\$0")")/../lib/berth/dist
if [ -z "\${NODE_OPTIONS:-}" ] && [ ! "$NODE" -nt "\$dist/berthctl.blob.node" ] && [ ! "$NODE" -ot "\$dist/berthctl.blob.node" ]; then
  exec "$NODE" --snapshot-blob "\$dist/berthctl.blob" "\$0" "\$@"
fi
exec "\$dist/berthctl-launcher.cjs" "\$@"
EOF
    chmod 0755 "$bindir/$cmd"
    echo "install: $bindir/$cmd (V8 startup snapshot)"
    continue
  fi
  if [ "$cmd" = berthctl ] && [ "$bundled" = true ]; then
    # A relative link: the bundle's #! line names node, nothing else runs first.
    ln -s ../lib/berth/dist/berthctl-launcher.cjs "$bindir/$cmd"
    echo "install: $bindir/$cmd (bundled)"
    continue
  fi
  cat >"$bindir/$cmd" <<EOF
#!/bin/sh
# $cmd: $marker
here=\$(dirname "\$(readlink -f "\$0")")
PATH="$(dirname "$NODE"):\$PATH" exec "\$here/../lib/berth/dist/src/bin/$cmd.js" "\$@"
EOF
  chmod 0755 "$bindir/$cmd"
  echo "install: $bindir/$cmd"
done

# The configuration: the defaults as `berthd config` prints them, only when none exists.
mkdir -p "$confdir"
if [ -e "$confdir/berth.toml" ]; then
  echo "install: kept $confdir/berth.toml"
else
  {
    echo "# berthd's configuration (every key optional); written by scripts/install.sh"
    echo "# from \`berthd config\`: the defaults. See README's \"Configuration reference\"."
    "$bindir/berthd" config --config /dev/null
  } >"$confdir/berth.toml.new"
  mv "$confdir/berth.toml.new" "$confdir/berth.toml"
  echo "install: $confdir/berth.toml"
fi

# The service. KillMode=mixed: stopping berthd sends SIGTERM to berthd alone (it stops
# serving and exits), and only what is still left in its cgroup is killed; containers
# survive because conmon and pod inits already live in cgroups of their own under each
# pod's. Delegate=yes: berthd manages the cgroups below its own. Restart=on-failure:
# berthd recovers its state (and the exits it missed) when it comes back.
mkdir -p "$(dirname "$unit")"
cat >"$unit" <<EOF
# $marker
[Unit]
Description=berth Kubernetes container runtime (CRI)
Documentation=https://github.com/kubernetes/cri-api
After=network-online.target local-fs.target
Wants=network-online.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$PREFIX/bin/berthd --config /etc/berth/berth.toml
Type=simple
KillMode=mixed
Delegate=yes
Restart=on-failure
RestartSec=5
# Containers' processes are not berthd's, but berthd opens a descriptor or more per
# container and pod: no limits, as containerd's and CRI-O's units.
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
EOF
echo "install: $unit"

if systemd_here; then
  systemctl daemon-reload
fi

cat <<EOF

berth is installed. Start it with:
  systemctl enable --now berthd
Point the kubelet at it with:
  --container-runtime-endpoint=unix:///run/berth/berth.sock
(or containerRuntimeEndpoint: unix:///run/berth/berth.sock in its KubeletConfiguration;
its cgroupDriver must match cgroup_driver in /etc/berth/berth.toml, cgroupfs by default)
and crictl with:
  crictl --runtime-endpoint unix:///run/berth/berth.sock ps   (or berthctl ps)
Remove it with: bash scripts/install.sh --uninstall
EOF
