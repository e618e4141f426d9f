#!/usr/bin/env bash
# Whole-server load test: the full ingest path against sluice's own no-work
# baseline (same binary, `no_work_baseline = true`: 202 without auth,
# conversion or storage), in the same run, on this machine.
#
#   benches/load.sh [SECONDS] [CONNECTIONS]
#
# Builds release, sets up a tenant, key, token and JSON stream in a temporary
# data directory, and runs wrk with a ~300-byte JSON body against each mode.
# Reports requests/s, latency percentiles, server CPU time per request
# (user+sys of the sluice process over the run / requests) and peak RSS.
# Traffic goes to 127.0.0.1 only; every run is bounded by SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-64}
port=${SLUICE_BENCH_PORT:-18080}

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --quiet
bin=$PWD/target/release/sluice
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export SLUICE_DATA_DIR=$work/data

$bin tenant add bench >/dev/null 2>&1
key=$($bin key add --tenant bench --name load 2>/dev/null)
export SLUICE_TOKEN=$($bin token generate --tenant bench --key "$key" --days 1 2>/dev/null)
export SLUICE_STREAM=$($bin stream add --tenant bench --name load --format json 2>/dev/null)
export SLUICE_TENANT=bench
export SLUICE_BODY_FILE=$work/body.json
python3 - "$SLUICE_BODY_FILE" <<'PY'
import json, sys
record = {"event_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "event_type": "page_view",
          "customer_id": "C-000123456", "email": "someone@example.com",
          "url": "https://shop.example.com/products/blue-widget?ref=home",
          "ts": "2026-11-27T07:15:00.000Z", "amount": 19.99, "currency": "USD",
          "tags": ["web", "promo"], "session": {"id": "s-42", "n": 7}}
body = json.dumps(record)
body += " " * max(0, 300 - len(body))
open(sys.argv[1], "w").write(body)
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

run_mode() {
  local name=$1; shift
  env "$@" $bin serve --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$((port + 1)) 2>"$work/$name.log" &
  local pid=$!
  for _ in $(seq 100); do
    grep -q '"event":"ready"' "$work/$name.log" 2>/dev/null && break
    sleep 0.1
  done
  # Warm up, then measure.
  wrk -t1 -c"$connections" -d2s -s benches/post.lua "http://127.0.0.1:$port" >/dev/null
  local before=$(cpu_ticks $pid)
  local result=$(wrk -t1 -c"$connections" -d"${seconds}s" -s benches/post.lua "http://127.0.0.1:$port" | grep '^RESULT')
  local after=$(cpu_ticks $pid)
  local rss=$(peak_rss_kb $pid)
  kill -TERM $pid; wait $pid || true
  local hz=$(getconf CLK_TCK)
  python3 - "$name" "$result" "$before" "$after" "$hz" "$rss" <<'PY'
import sys
name, result, before, after, hz, rss = sys.argv[1:]
fields = dict(kv.split("=") for kv in result.split()[1:])
requests = int(fields["requests"]); seconds = int(fields["duration_us"]) / 1e6
cpu_us = (int(after) - int(before)) / int(hz) * 1e6
print(f"| {name} | {requests / seconds:,.0f} | {int(fields['p50_us'])/1000:.2f} | {int(fields['p99_us'])/1000:.2f} | "
      f"{int(fields['p999_us'])/1000:.2f} | {cpu_us / max(requests,1):.1f} | {int(rss)/1024:.1f} | {fields['errors']} |")
PY
}

echo "sluice load test: ${seconds}s, $connections connections, 300-byte JSON, $(nproc) cores, $(uname -r)"
echo "| mode | requests/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/request | peak RSS MiB | errors |"
echo "|---|---|---|---|---|---|---|---|"
run_mode baseline SLUICE_NO_WORK_BASELINE=true
run_mode full-path SLUICE_NO_WORK_BASELINE=false
run_mode full-path-disk SLUICE_NO_WORK_BASELINE=false SLUICE_DURABILITY=disk
