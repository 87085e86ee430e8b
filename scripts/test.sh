#!/usr/bin/env bash
# The one test command (see README): installs what the tests need when it is
# missing, builds, and runs the tap suite. Extra arguments go to tap, e.g.
#   bash scripts/test.sh --grep 'outbox'
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- system tools -----------------------------------------------------------
# The tests start their own Mosquitto brokers (test/helpers/mosquitto.ts) on free loopback
# ports; the system mosquitto service is never used.
bash scripts/system-deps.sh test

# --- node dependencies and build ------------------------------------------
log "dependencies and build"
bash scripts/ensure-deps.sh

# --- lint: typescript-eslint's recommended rules (eslint.config.js) -------------
log "lint"
npx eslint .

# --- build and test ----------------------------------------------------------
shopt -s nullglob
tests=(dist/test/*.test.js)
if [ "${#tests[@]}" -eq 0 ]; then
  log "no compiled tests in dist/test"
  exit 1
fi
log "tap ${#tests[@]} test file(s)"
exec npx tap "${tests[@]}" "$@"
