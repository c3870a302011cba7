#!/usr/bin/env bash
# Installs the Debian packages named that are missing (apt-get update runs only then).
# Usage: ensure-debian-packages.sh WHO PACKAGE…   (WHO prefixes the message, e.g. setup)
set -euo pipefail
who="$1"
shift
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "$who: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
