#!/usr/bin/env bash
# The one test command (see README): installs what the tests need when it is
# missing, builds, and runs the tap suite. Extra arguments go to tap, e.g.
#   bash scripts/test.sh --grep 'outbox'
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- system tools -----------------------------------------------------------
# The tests start their own Mosquitto brokers (test/helpers/mosquitto.ts) on
# free loopback ports; the system mosquitto service is never used.
need_apt=0
for tool in mosquitto mosquitto_passwd socat sqlite3 mbpoll openssl; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
    log "missing: $tool"
    need_apt=1
  fi
done
# The Modbus interoperability test reads a server from another project: Debian's pymodbus.
if ! /usr/bin/python3 -c 'import pymodbus' >/dev/null 2>&1; then
  log "missing: python3-pymodbus"
  need_apt=1
fi
# promtool (Debian's prometheus package) checks the /metrics output.
if ! command -v promtool >/dev/null 2>&1; then
  log "missing: promtool"
  need_apt=1
fi
if [ "$need_apt" = 1 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      log "not root and no sudo: install mosquitto socat sqlite3 mbpoll python3-pymodbus prometheus openssl yourself"
      exit 1
    fi
  fi
  log "installing mosquitto socat sqlite3 mbpoll python3-pymodbus prometheus openssl with apt-get"
  # On a fresh CI box (root, no init system) keep the package from trying to
  # start the system mosquitto service: we never use it, and a failed service
  # start must not fail the install.
  policy_rc=0
  if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_rc=1
  fi
  rc=0
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
  if [ "$rc" = 0 ]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends mosquitto socat sqlite3 mbpoll python3-pymodbus prometheus openssl >/dev/null || rc=$?
  fi
  if [ "$policy_rc" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$rc" != 0 ]; then
    log "apt-get failed (exit $rc)"
    exit "$rc"
  fi
fi
if ! [ -x /usr/sbin/mosquitto ]; then
  log "/usr/sbin/mosquitto not found after install"
  exit 1
fi

# --- node dependencies and build ------------------------------------------
log "dependencies and build"
bash scripts/ensure-deps.sh

# --- build and test ----------------------------------------------------------
shopt -s nullglob
tests=(dist/test/*.test.js)
if [ "${#tests[@]}" -eq 0 ]; then
  log "no compiled tests in dist/test"
  exit 1
fi
log "tap ${#tests[@]} test file(s)"
exec npx tap "${tests[@]}" "$@"
