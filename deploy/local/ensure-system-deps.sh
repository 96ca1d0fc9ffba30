#!/usr/bin/env bash
# Installs the Debian packages the local stack needs (Prosody, Redis) when they are missing, and the
# npm packages when node_modules is absent. Used by `npm run demo` and by CI on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v prosody >/dev/null 2>&1 || missing+=(prosody)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Install them (as root: apt-get install -y ${missing[*]})." >&2
    exit 1
  fi
  echo "Installing ${missing[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
fi
