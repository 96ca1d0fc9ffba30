#!/usr/bin/env bash
# `npm run demo` on a fresh clone: install what is missing, then start the local stack and the fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash local-stack/ensure-system-deps.sh
exec node --import tsx demo/demo.ts
