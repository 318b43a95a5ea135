#!/usr/bin/env bash
# One sale through an installed posbridge: `serve --sandbox` in the background on free ports,
# a card sale with the command-line register client, then a graceful stop.
#
#   packaging/smoke.sh /path/to/posbridge
set -euo pipefail
bin="$1"
work="$(mktemp -d)"
export POSBRIDGE_SANDBOX_DIR="$work/state"
"$bin" serve --sandbox --ecr-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --ready-file "$work/ready.json" --approve-delay 0.05 --log-format json \
    >"$work/stdout.log" 2>"$work/daemon.log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 600); do  # bounded: a minute at most on a slow machine
    [ -s "$work/ready.json" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log"; echo "smoke: $bin exited"; exit 1; }
    sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "smoke: $bin did not start"; exit 1; }
port="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ecr_port"])' "$work/ready.json")"

"$bin" sale --url "ws://127.0.0.1:$port/ecr" --terminal lane-1 --order-no SMOKE1 \
    --amount 12.00 --currency USD --json >"$work/sale.json"
python3 -c 'import json, sys; t = json.load(open(sys.argv[1])); assert t["state"] == "approved", t' \
    "$work/sale.json" || { cat "$work/sale.json"; exit 1; }

kill -TERM "$pid"
wait "$pid" || { echo "smoke: $bin did not stop cleanly"; cat "$work/daemon.log"; exit 1; }
echo "smoke: a card sale approved through $bin"
