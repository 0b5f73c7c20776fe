#!/usr/bin/env bash
# A software TPM 2.0 for QA and the demo: swtpm in socket mode on loopback.
#
#   scripts/swtpm.sh start [--dir DIR] [--port PORT]   start it (idempotent); prints the transport string
#   scripts/swtpm.sh stop  [--dir DIR]                 stop it cleanly (its state stays in DIR)
#   scripts/swtpm.sh status [--dir DIR]
#
# The state directory is the TPM: the same directory keeps the same EK across restarts,
# a new one is a new TPM. Default: /var/tmp/iot-agent-swtpm (or $IOT_AGENT_SWTPM_DIR).
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}; [ -n "$cmd" ] || usage; shift
dir=${IOT_AGENT_SWTPM_DIR:-/var/tmp/iot-agent-swtpm}
port=2321
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65534 ] || { echo "swtpm.sh: --port must be 1..65534" >&2; exit 2; }

pidfile="$dir/swtpm.pid"
portfile="$dir/swtpm.port"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
transport() { echo "swtpm:host=127.0.0.1,port=$(cat "$portfile")"; }

case "$cmd" in
  start)
    command -v swtpm >/dev/null || { echo "swtpm.sh: swtpm is not installed; run scripts/setup.sh" >&2; exit 1; }
    mkdir -p "$dir"
    if running; then transport; exit 0; fi
    swtpm socket --tpm2 --daemon \
      --tpmstate "dir=$dir" \
      --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
      --flags not-need-init,startup-clear \
      --pid "file=$pidfile" \
      --log "file=$dir/swtpm.log,level=1"
    echo "$port" > "$portfile"
    for _ in $(seq 50); do running && break; sleep 0.1; done
    running || { echo "swtpm.sh: swtpm did not start; see $dir/swtpm.log" >&2; exit 1; }
    transport
    ;;
  stop)
    if ! running; then echo "swtpm.sh: not running ($dir)" >&2; exit 0; fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "swtpm.sh: swtpm $pid did not stop" >&2; exit 1; fi
    rm -f "$pidfile"
    echo "swtpm.sh: stopped (state kept in $dir)"
    ;;
  status)
    if running; then echo "running: $(transport) (pid $(cat "$pidfile"), state $dir)"; else echo "not running ($dir)"; exit 3; fi
    ;;
  *) usage ;;
esac
