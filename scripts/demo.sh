#!/usr/bin/env bash
# The demo: installs what it needs (mosquitto through scripts/system-deps.sh, the Node
# dependencies), builds, creates the demo key on first run, starts the Modbus TCP simulator on
# 127.0.0.1:15020 (a meter on unit 1, a SunSpec inverter on unit 2), a private Mosquitto on
# 127.0.0.1:18830, and runs the agent on config/demo.json, which polls the simulator over real
# Modbus TCP (everything under ./var/demo, no hardware). Prints the buffer every few seconds.
# Ctrl-C stops it all.
#
#   bash scripts/demo.sh                 run the demo
#   bash scripts/demo.sh tour [...]      a guided run of about two minutes that ends with a verdict
#                                        (scripts/tour.ts; options: --outage-s, --rate, --dir ...)
#   bash scripts/demo.sh broker stop     pull the broker's plug (from another terminal)
#   bash scripts/demo.sh broker start    plug it back in
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=$ROOT/var/demo
PORT=18830
MOSQ=/usr/sbin/mosquitto
CLI=(node "$ROOT/dist/agent/cli/main.js")

broker_start() {
  if [ -f "$VAR/mosquitto.pid" ] && kill -0 "$(cat "$VAR/mosquitto.pid")" 2>/dev/null; then return 0; fi
  mkdir -p "$VAR/broker"
  cat >"$VAR/broker/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
log_dest file $VAR/broker/mosquitto.log
$( [ "$(id -u)" = 0 ] && echo "user root" )
EOF
  "$MOSQ" -c "$VAR/broker/mosquitto.conf" &
  echo $! >"$VAR/mosquitto.pid"
  echo "demo: broker up on mqtt://127.0.0.1:$PORT (pid $(cat "$VAR/mosquitto.pid"))"
}

broker_stop() {
  if [ -f "$VAR/mosquitto.pid" ]; then
    kill "$(cat "$VAR/mosquitto.pid")" 2>/dev/null || true
    rm -f "$VAR/mosquitto.pid"
    echo "demo: broker stopped: readings now pile up in the store"
  fi
}

if [ "${1:-}" = broker ]; then
  case "${2:-}" in
    start) broker_start; exit 0 ;;
    stop) broker_stop; exit 0 ;;
    *) echo "usage: $0 broker start|stop" >&2; exit 2 ;;
  esac
fi

bash scripts/system-deps.sh demo
bash scripts/ensure-deps.sh
if [ "${1:-}" = tour ]; then
  shift
  exec node dist/scripts/tour.js "$@"
fi
mkdir -p "$VAR"
chmod 700 "$VAR"
[ -f "$VAR/keys/holdfast.key" ] || "${CLI[@]}" keygen --out "$VAR/keys/holdfast.key"
"${CLI[@]}" config validate config/demo.json
broker_start
"${CLI[@]}" simulate modbus-tcp --port 15020 --units 1:meter,2:sunspec-inverter &
SIM=$!

# The memory settings production uses (ecosystem.config.js): small V8 semi-spaces, one malloc arena.
MALLOC_ARENA_MAX=1 NODE_OPTIONS=--max-semi-space-size=2 "${CLI[@]}" run --config config/demo.json &
AGENT=$!
cleanup() {
  kill "$AGENT" 2>/dev/null || true
  wait "$AGENT" 2>/dev/null || true
  kill "$SIM" 2>/dev/null || true
  broker_stop
}
trap cleanup EXIT INT TERM

cat <<EOF

Holdfast demo running. Log: $VAR/log/engine.log
  pull the plug:   bash scripts/demo.sh broker stop
  plug it back:    bash scripts/demo.sh broker start
  crash it:        kill -9 $AGENT   (then run this script again: nothing committed is lost)
  unplug the field: kill $SIM     (the agent reports the device fault and retries with backoff)
  look inside:     sqlite3 $VAR/data/holdfast.db 'SELECT status, count(*) FROM recovery_tasks GROUP BY 1'
Ctrl-C stops the demo.

EOF
while kill -0 "$AGENT" 2>/dev/null; do
  sleep 5
  "${CLI[@]}" status --config config/demo.json || true
  echo
done
