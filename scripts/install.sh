#!/usr/bin/env bash
# Installs the built Holdfast agent on a Debian/Ubuntu gateway, or removes it (docs/install.md).
#
#   sudo bash scripts/install.sh                 pm2 supervises the agent (the default)
#   sudo bash scripts/install.sh --systemd       the systemd unit scripts/holdfast.service instead
#   bash scripts/install.sh --dry-run            every step it would take; changes nothing
#   bash scripts/install.sh --root DIR --no-npm  a real install into DIR, as any user (the tests)
#   sudo bash scripts/install.sh --uninstall [--purge]
#
# Every step checks first and prints one line: "ok   <what>" when nothing had to change,
# "done <what>" when it changed something, "would <what>" in a dry run, "skip <what>" when the
# step cannot be done here (--root, --no-npm) or must wait. A second run prints no "done" line and
# ends with "nothing changed".
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- the production layout (config/production.json, docs/install.md) ---------------------------
USER_NAME=holdfast
HOME_DIR=/var/lib/recovery          # the user's home: pm2 keeps its PM2_HOME (.pm2) here
DATA_DIR=/var/lib/recovery/data
LOG_DIR=/var/log/recovery
SPOOL_DIR=/tmp/recovery_cache
ETC_DIR=/etc/holdfast
CONFIG=/etc/holdfast/holdfast.json
KEY=/etc/holdfast/holdfast.key
CODE=/opt/holdfast
MAIN=/opt/holdfast/dist/agent/cli/main.js
BIN=/usr/local/bin/holdfast
UNIT=/etc/systemd/system/holdfast.service
PM2_UNIT=/etc/systemd/system/pm2-holdfast.service
TMPFILES=/etc/tmpfiles.d/holdfast.conf
LOGROTATE=/etc/logrotate.d/holdfast
# What the agent needs at run time, relative to the repository (and to $CODE). hardware/profiles:
# hardware/profile.ts finds the board profiles next to the build (../../hardware/profiles).
CODE_PARTS=(package.json package-lock.json dist/agent dist/drivers dist/store dist/hardware hardware/profiles config/devices)
WRAPPER_MARK='# holdfast command, installed by scripts/install.sh'

usage() {
  cat <<EOF
usage: $PROG [options]

Installs the built Holdfast agent: the system user $USER_NAME, its directories, the config and the
store key (each only if absent), the code in $CODE with its production dependencies, the
command $BIN, and the service (pm2 by default). Every step checks first and prints
"ok", "done", "would" or "skip"; running it again changes nothing.

options:
  --pm2          supervise the agent with pm2 (the default): pm2 startup for user $USER_NAME,
                 pm2 start ecosystem.config.js, pm2 save; installs pm2 with npm if missing
  --systemd      supervise it with the systemd unit $UNIT instead
                 (scripts/holdfast.service): daemon-reload, enable --now
  --no-npm       do not run npm (no npm ci --omit=dev in $CODE, no build, no pm2 install)
  --dry-run      print every step it would take; change nothing
  --root DIR     install under DIR (DESTDIR-style: every path is prefixed with DIR), as any
                 user: the user is not created, owners are not set, pm2 and systemctl are not
                 called (each printed as "skip")
  --uninstall    remove the service, the code, the command, the unit, the tmpfiles.d and
                 logrotate entries; keep the data, the logs, the spool, the config, the key and
                 the user
  --purge        with --uninstall: also remove the data ($HOME_DIR), the logs ($LOG_DIR),
                 the spool ($SPOOL_DIR), the config and the key ($ETC_DIR), and the user
  -h, --help     this help

exit status: 0 done (or nothing to do), 1 a step failed, 2 usage
EOF
}

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
# unmet MESSAGE: a precondition of the real thing is missing: stop (a dry run only warns).
unmet() { if [ "$DRY" = 1 ]; then warn "$*"; else die "$*"; fi; }
usage_error() { printf '%s: %s (see --help)\n' "$PROG" "$*" >&2; exit 2; }

MODE=pm2 DRY=0 NO_NPM=0 UNINSTALL=0 PURGE=0 R=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pm2) MODE=pm2 ;;
    --systemd) MODE=systemd ;;
    --no-npm) NO_NPM=1 ;;
    --dry-run) DRY=1 ;;
    --root)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--root needs a directory"; fi
      R=$(realpath -m -- "$2")
      [ "$R" != / ] || usage_error "--root / is the real system: leave --root out"
      shift ;;
    --root=*)
      R=$(realpath -m -- "${1#--root=}")
      [ "$R" != / ] || usage_error "--root / is the real system: leave --root out" ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
  shift
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || usage_error "--purge goes with --uninstall"

# SYSTEM=1: the real system (the user, owners, pm2, systemctl); 0: under --root, files only.
SYSTEM=1
[ -z "$R" ] || SYSTEM=0
if [ "$SYSTEM" = 1 ] && [ "$DRY" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run me as root (or --dry-run to see the plan, or --root DIR to install into a folder)"
fi
umask 022

# --- output ------------------------------------------------------------------------------------
CHANGES=0 SKIPS=0
line() { printf '%-4s %s\n' "$1" "$2"; }
ok() { line ok "$1"; }
skip() { line skip "$1"; SKIPS=$((SKIPS + 1)); }
warn() { printf 'warn %s\n' "$1" >&2; }
# change WHAT COMMAND...: runs the command (not in a dry run) and says so.
change() {
  local what=$1
  shift
  CHANGES=$((CHANGES + 1))
  if [ "$DRY" = 1 ]; then
    line would "$what"
    return 0
  fi
  "$@"
  line 'done' "$what"
}
# quiet COMMAND...: runs it with its output kept back, shown only when it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "failed: $*"
  fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- node ---------------------------------------------------------------------------------------
NODE_BIN=$(command -v node || true)
if [ -z "$NODE_BIN" ]; then
  [ "$SYSTEM" = 0 ] || unmet "no node on PATH: Holdfast needs Node.js >= 20 (apt-get install nodejs)"
  NODE_BIN=/usr/bin/node
  warn "no node on PATH: the unit and the command will call $NODE_BIN"
else
  # The path as found (a symlink such as /usr/local/bin/node stays valid across upgrades).
  node_major=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
  [ "$node_major" -ge 20 ] || unmet "node $("$NODE_BIN" --version) at $NODE_BIN: Holdfast needs Node.js >= 20"
  case "$(realpath "$NODE_BIN")" in
    /home/* | /root/* | /run/user/*) warn "node is $NODE_BIN: the unit's ProtectHome=yes hides it, and user $USER_NAME may not reach it; install Node.js system-wide" ;;
  esac
fi

# --- small helpers -----------------------------------------------------------------------------
mode_of() { stat -c %a "$1" | awk '{ printf "%04d", $1 }'; }
owner_of() { stat -c %U:%G "$1"; }

# ensure_mode PATH MODE (PATH without the root prefix)
ensure_mode() {
  local p=$R$1 mode=$2 have
  have=$(mode_of "$p")
  if [ "$have" = "$mode" ]; then ok "$p: mode $mode"; else change "$p: mode $have -> $mode" chmod "$mode" "$p"; fi
}

# ensure_owner PATH USER:GROUP
ensure_owner() {
  local p=$R$1 want=$2 have=""
  if [ "$SYSTEM" = 0 ]; then
    skip "$p: owner $want (--root)"
    return 0
  fi
  [ -e "$p" ] && have=$(owner_of "$p")
  if [ "$have" = "$want" ]; then ok "$p: owner $want"; else change "$p: owner ${have:-none} -> $want" chown "$want" "$p"; fi
}

make_dir() { mkdir -p -- "$1" && chmod "$2" "$1"; }

# ensure_dir PATH MODE USER:GROUP
ensure_dir() {
  if [ -d "$R$1" ]; then ensure_mode "$1" "$2"; else change "$R$1: created (mode $2)" make_dir "$R$1" "$2"; fi
  ensure_owner "$1" "$3"
}

put_file() { # SRC DEST MODE: copied next to DEST, then renamed over it (never half-written)
  mkdir -p -- "$(dirname "$2")"
  cp -- "$1" "$2.holdfast-new"
  chmod "$3" "$2.holdfast-new"
  mv -f -- "$2.holdfast-new" "$2"
}

# ensure_file PATH MODE USER:GROUP SRCFILE: PATH holds exactly SRCFILE's bytes.
ensure_file() {
  local p=$R$1
  if [ ! -e "$p" ]; then
    change "$p: installed (mode $2)" put_file "$4" "$p" "$2"
  elif ! cmp -s "$4" "$p"; then
    change "$p: updated" put_file "$4" "$p" "$2"
  else
    ok "$p: up to date"
    ensure_mode "$1" "$2"
  fi
  ensure_owner "$1" "$3"
}

remove_path() { # PATH [WHAT]
  local p=$R$1
  if [ -e "$p" ] || [ -L "$p" ]; then change "$p: removed${2:+ ($2)}" rm -rf -- "$p"; else ok "$p: absent"; fi
}

as_user() { (cd / && runuser -u "$USER_NAME" -- env HOME="$HOME_DIR" PM2_HOME="$HOME_DIR/.pm2" PATH="$PATH" "$@"); }

# The ecosystem file: ecosystem.config.js (an ES module pm2 require()s, Node >= 20.19), or the
# older ecosystem.config.cjs.
ECO=""
for f in ecosystem.config.js ecosystem.config.cjs; do
  if [ -f "$SRC/$f" ]; then ECO=$f; break; fi
done

# --- install steps ------------------------------------------------------------------------------
step_user() {
  local groups=""
  getent group dialout >/dev/null 2>&1 && groups=dialout
  local cmd="useradd --system --user-group --home-dir $HOME_DIR --no-create-home --shell /usr/sbin/nologin${groups:+ --groups $groups} $USER_NAME"
  if [ "$SYSTEM" = 0 ]; then
    skip "system user $USER_NAME (--root: not created; on the target: $cmd)"
    return 0
  fi
  if getent passwd "$USER_NAME" >/dev/null; then
    ok "system user $USER_NAME"
    if [ -n "$groups" ] && ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx dialout; then
      change "system user $USER_NAME: added to group dialout (serial ports)" usermod -aG dialout "$USER_NAME"
    fi
  else
    # shellcheck disable=SC2086 # $cmd is our own words
    change "system user $USER_NAME: created (no login shell, home $HOME_DIR${groups:+, group $groups})" $cmd
  fi
}

step_dirs() {
  ensure_dir "$HOME_DIR" 0750 "$USER_NAME:$USER_NAME"
  ensure_dir "$DATA_DIR" 0700 "$USER_NAME:$USER_NAME"
  ensure_dir "$LOG_DIR" 0750 "$USER_NAME:$USER_NAME"
  ensure_dir "$SPOOL_DIR" 0700 "$USER_NAME:$USER_NAME"
  ensure_dir "$ETC_DIR" 0750 "root:$USER_NAME"
  ensure_file "$TMPFILES" 0644 root:root "$SRC/scripts/holdfast.tmpfiles"
  if [ -f "$SRC/scripts/holdfast.logrotate" ]; then
    ensure_file "$LOGROTATE" 0644 root:root "$SRC/scripts/holdfast.logrotate"
  fi
}

CONFIG_CREATED=0
step_config() {
  if [ -e "$R$CONFIG" ]; then
    ok "$R$CONFIG: kept as it is (an existing config is never overwritten)"
    return 0
  fi
  change "$R$CONFIG: installed from config/production.json (mode 0640)" put_file "$SRC/config/production.json" "$R$CONFIG" 0640
  [ "$DRY" = 1 ] || CONFIG_CREATED=1
  ensure_owner "$CONFIG" "root:$USER_NAME"
}

# The store's keyring (store/codec.ts): one "<keyId> <64 hex chars>" line; key id k1 is
# store.keyId's default. The same as `holdfast keygen --out FILE`, without needing the agent.
write_key() {
  local hex
  hex=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  [ "${#hex}" = 64 ] || die "could not read 32 random bytes"
  mkdir -p -- "$(dirname "$1")"
  (umask 077 && printf 'k1 %s\n' "$hex" >"$1.holdfast-new")
  mv -f -- "$1.holdfast-new" "$1"
}

step_key() {
  if [ -e "$R$KEY" ]; then
    ok "$R$KEY: kept as it is (an existing key is never replaced)"
    ensure_mode "$KEY" 0600
  else
    change "$R$KEY: new AES-256 key (32 random bytes, key id k1, mode 0600)" write_key "$R$KEY"
  fi
  ensure_owner "$KEY" "$USER_NAME:$USER_NAME"
}

build_source() {
  local owner
  owner=$(stat -c %U "$SRC")
  if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ]; then
    # Not root-owned files in someone's checkout: build as its owner.
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    runuser -u "$owner" -- bash -c 'cd "$1" && npm ci && npm run build' _ "$SRC"
  else
    (cd "$SRC" && npm ci && npm run build)
  fi
}

CODE_CHANGED=0
copy_parts() {
  local rel
  for rel in "$@"; do
    rm -rf -- "${R:?}$CODE/$rel"
    mkdir -p -- "$(dirname "$R$CODE/$rel")"
    cp -R -- "$SRC/$rel" "$R$CODE/$rel"
    chmod -R u=rwX,go=rX "$R$CODE/$rel"
  done
  if [ -f "$R$MAIN" ]; then chmod 0755 "$R$MAIN"; fi
}

step_code() {
  if [ ! -f "$SRC/dist/agent/cli/main.js" ]; then
    if [ "$NO_NPM" = 1 ]; then die "$SRC/dist is not built: run npm ci && npm run build there (or drop --no-npm)"; fi
    change "$SRC: built (npm ci && npm run build)" build_source
  fi
  [ -n "$ECO" ] || die "no ecosystem.config.js or ecosystem.config.cjs in $SRC"
  ensure_dir "$CODE" 0755 root:root
  local parts=("${CODE_PARTS[@]}" "$ECO") stale=() rel
  for rel in "${parts[@]}"; do
    if [ ! -e "$SRC/$rel" ] && [ "$DRY" = 0 ]; then die "$SRC/$rel is missing"; fi
    if [ -d "$SRC/$rel" ]; then
      diff -rq -- "$SRC/$rel" "$R$CODE/$rel" >/dev/null 2>&1 || stale+=("$rel")
    else
      cmp -s -- "$SRC/$rel" "$R$CODE/$rel" || stale+=("$rel")
    fi
  done
  if [ "${#stale[@]}" -eq 0 ]; then
    ok "$R$CODE: up to date (${parts[*]})"
  else
    change "$R$CODE: copied ${stale[*]}" copy_parts "${stale[@]}"
    CODE_CHANGED=1
  fi
  # The other ecosystem file, from an older install, would be a second, stale process file.
  for rel in ecosystem.config.js ecosystem.config.cjs; do
    if [ "$rel" != "$ECO" ] && [ -e "$R$CODE/$rel" ]; then remove_path "$CODE/$rel" "replaced by $ECO"; fi
  done
}

# npm ci --omit=dev in $CODE, again only when package-lock.json or the node version changed
# (better-sqlite3 and the serial port bindings are native modules built for one Node ABI).
npm_stamp() { printf 'lock %s node %s\n' "$(sha256sum <"$R$CODE/package-lock.json" | cut -d' ' -f1)" "$("$NODE_BIN" --version 2>/dev/null || echo none)"; }
run_npm_ci() {
  (cd "$R$CODE" && quiet npm ci --omit=dev --no-audit --no-fund)
  npm_stamp >"$R$CODE/node_modules/.holdfast-npm-ci"
}
step_npm() {
  local stamp_file=$R$CODE/node_modules/.holdfast-npm-ci
  if [ -f "$R$CODE/package-lock.json" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$(npm_stamp)" ]; then
    ok "$R$CODE/node_modules: installed for this package-lock.json and node $("$NODE_BIN" --version)"
  elif [ "$NO_NPM" = 1 ]; then
    skip "npm ci --omit=dev in $R$CODE (--no-npm)"
  else
    change "$R$CODE/node_modules: npm ci --omit=dev" run_npm_ci
    CODE_CHANGED=1
  fi
}

step_command() {
  cat >"$WORK/holdfast" <<EOF
#!/bin/sh
$WRAPPER_MARK (removed by --uninstall).
# The config comes from --config, else \$HOLDFAST_CONFIG, else $CONFIG.
: "\${HOLDFAST_CONFIG:=$CONFIG}"
export HOLDFAST_CONFIG
exec $NODE_BIN $MAIN "\$@"
EOF
  ensure_file "$BIN" 0755 root:root "$WORK/holdfast"
}

# The config as the agent's user reads it: starting on a refused config only makes a crash loop.
CONFIG_PROBLEM=""
config_valid() {
  local out
  if out=$(as_user env HOLDFAST_CONFIG= "$NODE_BIN" "$MAIN" config validate "$CONFIG" 2>&1); then return 0; fi
  CONFIG_PROBLEM=$(printf '%s\n' "$out" | head -n 1)
  return 1
}
config_gate() { # true when the agent may be started
  if [ "$DRY" = 1 ]; then return 0; fi
  if config_valid; then return 0; fi
  skip "start holdfast: $CONFIG is refused (${CONFIG_PROBLEM}); fix it (holdfast config validate), then run $PROG again"
  return 1
}

systemd_running() { [ -d /run/systemd/system ]; }

# The pm2 side, wherever it stands: the app in pm2's list, the pm2-holdfast unit.
pm2_bin() { command -v pm2 || true; }
pm2_app_registered() {
  local pm2=$1
  [ -n "$pm2" ] && systemctl is-active --quiet pm2-holdfast && as_user "$pm2" jlist 2>/dev/null | grep -q '"name":"holdfast"'
}
drop_pm2() {
  local pm2=$1
  if pm2_app_registered "$pm2"; then
    change "pm2: app holdfast deleted and the list saved" quiet as_user "$pm2" delete holdfast
    [ "$DRY" = 1 ] || quiet as_user "$pm2" save --force
  fi
  if [ -f "$PM2_UNIT" ]; then
    if [ -n "$pm2" ]; then
      change "pm2 unstartup: $PM2_UNIT removed" quiet "$pm2" unstartup systemd -u "$USER_NAME" --hp "$HOME_DIR" --service-name pm2-holdfast
    else
      change "$PM2_UNIT: stopped, disabled, removed" drop_unit pm2-holdfast "$PM2_UNIT"
    fi
  else
    ok "pm2: no pm2-holdfast unit"
  fi
}
drop_unit() { # NAME FILE
  systemctl disable --now "$1" >/dev/null 2>&1 || true
  rm -f -- "$2"
  systemctl daemon-reload
}

step_service_pm2() {
  # Two supervisors would run two agents on one store: the systemd unit goes.
  if [ -e "$R$UNIT" ]; then
    if [ "$SYSTEM" = 1 ]; then
      change "$UNIT: stopped, disabled, removed (pm2 supervises)" drop_unit holdfast "$UNIT"
    else
      remove_path "$UNIT" "pm2 supervises"
    fi
  fi
  if [ "$SYSTEM" = 0 ]; then
    skip "pm2 startup systemd -u $USER_NAME --hp $HOME_DIR (--root)"
    skip "pm2 start $CODE/$ECO as $USER_NAME, pm2 save (--root)"
    return 0
  fi
  systemd_running || unmet "systemd is not running here: pm2 startup needs it (or --root DIR to stage an install)"
  if [ "$ECO" = ecosystem.config.js ] && [ "$("$NODE_BIN" -p 'const [a,b]=process.versions.node.split(".").map(Number); a>20||(a===20&&b>=19)')" != true ]; then
    unmet "pm2 loads ecosystem.config.js with require(), which needs Node.js >= 20.19 (have $("$NODE_BIN" --version))"
  fi
  local pm2
  pm2=$(pm2_bin)
  if [ -n "$pm2" ]; then
    ok "pm2: $pm2"
  elif [ "$NO_NPM" = 1 ]; then
    skip "pm2 is not installed and --no-npm: install it (npm install -g pm2), then run $PROG again"
    return 0
  else
    local version
    version=$("$NODE_BIN" -p "require('$SRC/package.json').devDependencies?.pm2 ?? 'latest'")
    change "pm2: npm install -g pm2@$version" quiet npm install -g --no-audit --no-fund "pm2@$version"
    pm2=$(pm2_bin)
    pm2=${pm2:-pm2}
  fi
  if [ -f "$PM2_UNIT" ]; then
    ok "$PM2_UNIT: pm2 starts at boot as $USER_NAME"
  else
    change "pm2 startup systemd -u $USER_NAME --hp $HOME_DIR ($PM2_UNIT, enabled)" \
      quiet "$pm2" startup systemd -u "$USER_NAME" --hp "$HOME_DIR" --service-name pm2-holdfast
  fi
  # pm2's daemon starts under its unit, so that systemd holds it from the first install on.
  if systemctl is-active --quiet pm2-holdfast; then
    ok "pm2-holdfast: active"
  else
    change "pm2-holdfast: started" systemctl start pm2-holdfast
  fi
  config_gate || return 0
  local save=0
  if [ "$DRY" = 1 ] && ! systemctl is-active --quiet pm2-holdfast; then
    change "pm2 start $CODE/$ECO as $USER_NAME" true
    save=1
  elif pm2_app_registered "$pm2"; then
    if [ "$CODE_CHANGED" = 1 ]; then
      change "pm2: holdfast restarted on the new code ($ECO read again)" \
        quiet as_user "$pm2" delete holdfast
      [ "$DRY" = 1 ] || quiet as_user "$pm2" start "$CODE/$ECO"
      save=1
    else
      ok "pm2: holdfast is in pm2's list"
    fi
  else
    change "pm2 start $CODE/$ECO as $USER_NAME" quiet as_user "$pm2" start "$CODE/$ECO"
    save=1
  fi
  if [ "$save" = 1 ] || [ ! -f "$HOME_DIR/.pm2/dump.pm2" ]; then
    change "pm2 save (the list pm2 resurrects at boot)" quiet as_user "$pm2" save --force
  else
    ok "pm2: list saved"
  fi
}

step_service_systemd() {
  # Two supervisors would run two agents on one store: pm2's registration goes.
  if [ "$SYSTEM" = 1 ]; then
    drop_pm2 "$(pm2_bin)"
  elif [ -e "$R$PM2_UNIT" ]; then
    remove_path "$PM2_UNIT" "the systemd unit supervises"
  fi
  sed "s|^ExecStart=/usr/bin/node |ExecStart=$NODE_BIN |" "$SRC/scripts/holdfast.service" >"$WORK/holdfast.service"
  local before=$CHANGES
  ensure_file "$UNIT" 0644 root:root "$WORK/holdfast.service"
  local unit_changed=$((CHANGES - before))
  if [ "$SYSTEM" = 0 ]; then
    skip "systemctl daemon-reload; systemctl enable --now holdfast (--root)"
    return 0
  fi
  systemd_running || unmet "systemd is not running here: --systemd needs it (or --root DIR to stage an install)"
  if [ "$unit_changed" -gt 0 ]; then change "systemctl daemon-reload" systemctl daemon-reload; fi
  if systemctl is-enabled --quiet holdfast 2>/dev/null; then
    ok "holdfast.service: enabled"
  else
    change "holdfast.service: enabled (starts at boot)" quiet systemctl enable holdfast
  fi
  config_gate || return 0
  if systemctl is-active --quiet holdfast; then
    if [ "$CODE_CHANGED" = 1 ] || [ "$unit_changed" -gt 0 ]; then
      change "holdfast.service: restarted on the new code or unit" systemctl restart holdfast
    else
      ok "holdfast.service: active"
    fi
  else
    change "holdfast.service: started" systemctl start holdfast
  fi
}

install_all() {
  step_user
  step_dirs
  step_config
  step_key
  step_code
  step_npm
  step_command
  if [ "$MODE" = systemd ]; then step_service_systemd; else step_service_pm2; fi
}

# --- uninstall -----------------------------------------------------------------------------------
uninstall_all() {
  if [ "$SYSTEM" = 1 ]; then
    if [ -e "$UNIT" ]; then change "$UNIT: stopped, disabled, removed" drop_unit holdfast "$UNIT"; else ok "$UNIT: absent"; fi
    drop_pm2 "$(pm2_bin)"
  else
    remove_path "$UNIT"
    remove_path "$PM2_UNIT"
    skip "systemctl disable --now holdfast; pm2 delete holdfast; pm2 unstartup (--root)"
  fi
  remove_path "$TMPFILES"
  remove_path "$LOGROTATE"
  if [ -e "$R$BIN" ] && ! grep -qF "$WRAPPER_MARK" "$R$BIN" 2>/dev/null; then
    warn "$R$BIN is not the command this script installs: left as it is"
  else
    remove_path "$BIN"
  fi
  remove_path "$CODE"
  if [ "$PURGE" = 1 ]; then
    remove_path "$HOME_DIR" "the data, pm2's home"
    remove_path "$LOG_DIR" "the logs"
    remove_path "$SPOOL_DIR" "the spool"
    remove_path "$ETC_DIR" "the config, the key, the secrets"
    if [ "$SYSTEM" = 0 ]; then
      skip "userdel $USER_NAME (--root)"
    elif getent passwd "$USER_NAME" >/dev/null; then
      change "system user $USER_NAME: removed" userdel "$USER_NAME"
    else
      ok "system user $USER_NAME: absent"
    fi
  else
    local p
    for p in "$DATA_DIR" "$LOG_DIR" "$SPOOL_DIR" "$CONFIG" "$KEY"; do
      if [ -e "$R$p" ]; then ok "$R$p: kept (--purge removes it)"; fi
    done
    if [ "$SYSTEM" = 1 ] && getent passwd "$USER_NAME" >/dev/null; then
      ok "system user $USER_NAME: kept (it owns the kept data; --purge removes it)"
    fi
  fi
}

if [ -n "$R" ]; then
  printf 'root %s: every path below is under it; no user, owner, pm2 or systemctl change is made there (skip)\n' "$R"
fi
if [ "$UNINSTALL" = 1 ]; then uninstall_all; else install_all; fi

if [ "$DRY" = 1 ]; then
  if [ "$CHANGES" -eq 0 ]; then echo "dry run: nothing would change"; else echo "dry run: $CHANGES step(s) would change something; nothing was changed"; fi
elif [ "$CHANGES" -eq 0 ]; then
  if [ "$SKIPS" -gt 0 ]; then echo "nothing changed ($SKIPS step(s) skipped)"; else echo "nothing changed"; fi
else
  echo "$CHANGES change(s) made"
fi
if [ "$CONFIG_CREATED" = 1 ]; then
  echo "next: set gatewayId and the uplink in $CONFIG, write the MQTT password to /etc/holdfast/mqtt.pass (mode 0600, owner $USER_NAME), check it with: holdfast config validate; then run $PROG again: it starts the agent once the config is accepted"
fi
