#!/usr/bin/env bash
# `npm run demo` on a fresh clone: install what the demo runs and is missing (Prosody, Redis, the npm
# packages: ensure-system-deps.sh --demo), then start the stack and the fleet (demo/demo.ts). The demo's
# "Ready in" counts from here, and names the time spent installing when there was any.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_STARTED_AT_MS=$(date +%s%3N)
export DEMO_STARTED_AT_MS

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash local-stack/ensure-system-deps.sh --demo | tee "$log"
# Its "Installing X ..." lines say what it installed.
installed=$(sed -n 's/^Installing \(.*\) \.\.\.$/\1/p' "$log" | paste -sd ',' | sed 's/,/, /g')
rm -f "$log"
if [ -n "$installed" ]; then
  DEMO_INSTALLED=$installed
  DEMO_INSTALL_MS=$(($(date +%s%3N) - DEMO_STARTED_AT_MS))
  export DEMO_INSTALLED DEMO_INSTALL_MS
else
  unset DEMO_INSTALLED DEMO_INSTALL_MS
fi
exec node --import tsx demo/demo.ts
