#!/usr/bin/env bash
# Builds test/grpc-go-client against one google.golang.org/grpc version (from the Go
# module proxy) and prints the binary's path: test tooling only, cached in
# $BERTH_TOOLS_CACHE (default /var/cache/berth-test-tools).
# Usage: build-grpc-go-client.sh VERSION   (e.g. v1.51.0)
set -euo pipefail
source "$(dirname "$0")/go-tool-lib.sh"
version="${1:?usage: build-grpc-go-client.sh VERSION}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="$go_tools_cache"
out="$cache/grpc-go-client-$version"
source_sum="$(sha256sum "$here/test/grpc-go-client/main.go" | cut -c1-16)"
if [ -x "$out" ] && [ "$(cat "$out.source" 2>/dev/null)" = "$source_sum" ]; then
  echo "$out"
  exit 0
fi
require_go build-grpc-go-client
go_tool_workdir
work="$go_tool_work"
cp "$here/test/grpc-go-client/main.go" "$work/"
mkdir -p "$cache"
(
  cd "$work"
  go mod init berth.test/grpc-go-client
  go get "google.golang.org/grpc@$version"
  go mod tidy
  go build -o "$out.tmp" .
) >&2
mv "$out.tmp" "$out"
echo "$source_sum" >"$out.source"
echo "$out"
