# Shared by the scripts that build Go test tooling from the Go module proxy (cri-tools,
# csi-sanity, containerd 2, the Kubernetes binaries, the grpc-go client): test tooling
# only, never part of berth. Source it; it defines:
#   go_tools_cache                 the cache dir ($BERTH_TOOLS_CACHE, default /var/cache/berth-test-tools)
#   require_go NAME                Go on PATH, or NAME's one-line error and exit 1
#   go_tool_workdir                a temporary dir removed on exit (made writable first: Go's module cache is read-only)
#   module_source WORK MOD VER     downloads MOD@VER into Go's module cache and prints a writable copy's path
go_tools_cache="${BERTH_TOOLS_CACHE:-/var/cache/berth-test-tools}"

require_go() {
  export PATH="/usr/local/go/bin:$PATH"
  command -v go >/dev/null || { echo "$1: Go is not installed (expected at /usr/local/go)" >&2; exit 1; }
}

go_tool_workdir() {
  go_tool_work="$(mktemp -d)"
  trap 'chmod -R u+w "$go_tool_work" 2>/dev/null; rm -rf "$go_tool_work"' EXIT
}

# The module's own go.mod and go.sum pin its dependencies; it is built from a writable copy.
module_source() {
  local work="$1" mod="$2" version="$3"
  (cd "$work" && go mod init "berth.test/$(basename "$mod")" >/dev/null 2>&1 && GOFLAGS=-mod=mod go mod download "$mod@$version") >&2
  local src
  src="$(cd "$work" && go env GOMODCACHE)/$mod@$version"
  cp -r "$src" "$work/src"
  chmod -R u+w "$work/src"
  echo "$work/src"
}
