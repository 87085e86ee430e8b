#!/usr/bin/env bash
# Brings the system tools that the tests or the demo use, checking for each the exact thing that
# is used (the binary at the path the code runs, the Python import the fixture makes), and installs
# what is missing with apt-get: as root, or through sudo when there is one; otherwise it prints
# the exact command and stops.
#
#   bash scripts/system-deps.sh test    everything the test suite runs
#   bash scripts/system-deps.sh demo    what the demo and its tour run (mosquitto)
#   bash scripts/system-deps.sh check test|demo   only report, never install (exit 1 if missing)
set -euo pipefail

log() { printf '[system-deps] %s\n' "$*" >&2; }

check_only=0
if [ "${1:-}" = check ]; then check_only=1; shift; fi
purpose=${1:-}

# name | the check, run with bash -c, that must succeed | the Debian packages that provide it
DEMO_TOOLS=(
  'mosquitto|test -x /usr/sbin/mosquitto && /usr/sbin/mosquitto -h 2>&1 | grep -q "^mosquitto version"|mosquitto'
)
TEST_TOOLS=(
  "${DEMO_TOOLS[@]}"
  'mosquitto_passwd|command -v mosquitto_passwd|mosquitto'
  'socat|socat -V|socat'
  'sqlite3|sqlite3 -version|sqlite3'
  'mbpoll|test -x /usr/bin/mbpoll|mbpoll'
  'openssl|openssl version|openssl'
  # test/helpers/mount.ts (storage tests, as root): tmpfs and loop-mounted ext4 images
  'mount, umount, losetup|command -v mount && command -v umount && command -v losetup|mount'
  'mountpoint|command -v mountpoint|util-linux'
  'mkfs.ext4, e2fsck|command -v mkfs.ext4 && command -v e2fsck|e2fsprogs'
  'promtool|promtool --version|prometheus'
  # test/install.test.ts: systemd-analyze verify and security --offline on scripts/holdfast.service,
  # systemd-tmpfiles on the tmpfiles.d entry; the package brings both without systemd running.
  'systemd-analyze, systemd-tmpfiles|systemd-analyze --version && systemd-tmpfiles --version|systemd'
  # test/e2e-log-rotate.test.ts runs the shipped scripts/holdfast.logrotate with the real logrotate
  'logrotate|test -x /usr/sbin/logrotate|logrotate'
  # test/helpers/faketime.ts preloads the multi-threaded libfaketime (Node runs threads) from the
  # architecture's lib folder; the faketime package brings it (libfaketime) with the wrapper.
  'libfaketimeMT|ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null | grep -q .|faketime'
  # test/fixtures/pymodbus_server.py runs under /usr/bin/python3; pymodbus's server imports
  # pyserial and pyserial-asyncio, which Debian ships apart (python3-serial, python3-serial-asyncio)
  # as recommends that --no-install-recommends leaves out.
  'pymodbus server|/usr/bin/python3 -c "from pymodbus.server import StartAsyncTcpServer"|python3-pymodbus python3-serial python3-serial-asyncio'
)

case "$purpose" in
  test) tools=("${TEST_TOOLS[@]}") ;;
  demo) tools=("${DEMO_TOOLS[@]}") ;;
  *) echo "usage: $0 [check] test|demo" >&2; exit 2 ;;
esac

missing_names=()
packages=()
scan() {
  missing_names=()
  packages=()
  local entry name rest check pkgs
  for entry in "${tools[@]}"; do
    # The check may hold '|' itself: the name ends at the first bar, the packages start at the last.
    name=${entry%%|*}
    rest=${entry#*|}
    pkgs=${rest##*|}
    check=${rest%|*}
    if ! bash -c "$check" >/dev/null 2>&1; then
      missing_names+=("$name")
      # shellcheck disable=SC2206 # word splitting of the package list is intended
      packages+=($pkgs)
    fi
  done
}

scan
if [ "${#missing_names[@]}" -eq 0 ]; then exit 0; fi
# One package may serve two tools; install each once.
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
log "missing: ${missing_names[*]} (packages: ${packages[*]})"
install_cmd="apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$check_only" = 1 ]; then exit 1; fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "not root and no sudo: run this as root, then run me again:"
    log "  $install_cmd"
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "no apt-get on this machine: install the equivalent of: ${packages[*]}"
  exit 1
fi

# On a box without an init system (CI, containers) keep the mosquitto package from trying to
# start the system broker: nothing here uses it, and a failed service start fails the install.
policy_rc=0
if [ "$(id -u)" -eq 0 ] && [ ! -e /usr/sbin/policy-rc.d ] && [ ! -d /run/systemd/system ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  policy_rc=1
fi
rc=0
log "installing with apt-get: ${packages[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
if [ "$rc" = 0 ]; then
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null || rc=$?
fi
if [ "$policy_rc" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
if [ "$rc" != 0 ]; then
  log "apt-get failed (exit $rc); the command was: $install_cmd"
  exit "$rc"
fi

# Installed is not the same as working: check again, the same way.
scan
if [ "${#missing_names[@]}" -ne 0 ]; then
  log "still missing after the install: ${missing_names[*]}"
  exit 1
fi
log "all present"
