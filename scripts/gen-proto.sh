#!/usr/bin/env bash
# Generates TypeScript from proto/ into src/gen/ (never edited by hand, not committed).
# protoc comes from Debian's protobuf-compiler; @bufbuild/protoc-gen-es is the generator.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  echo "gen-proto: protoc not found; install Debian's protobuf-compiler (apt-get install protobuf-compiler)" >&2
  exit 1
fi
out=src/gen
rm -rf "$out" && mkdir -p "$out"
protoc \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
  --es_out="$out" \
  --es_opt=target=ts,import_extension=js \
  -I proto \
  proto/runtime/v1/api.proto proto/csi/v1/csi.proto proto/berth/v1/berth.proto
