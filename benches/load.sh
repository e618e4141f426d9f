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

if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client
fi
cargo build --release --quiet
bin=$PWD/target/release/sluice
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
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
# Anonymous memory only: the segment's mapped file pages count in RSS but
# are page cache, not growth of the process's own memory.
anon_rss_kb() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }

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
  local anon_before=$(anon_rss_kb $pid)
  local before=$(cpu_ticks $pid)
  local result=$(wrk -t1 -c"$connections" -d"${seconds}s" -s benches/post.lua "http://127.0.0.1:$port" | grep '^RESULT')
  local after=$(cpu_ticks $pid)
  local rss=$(peak_rss_kb $pid)
  local anon_after=$(anon_rss_kb $pid)
  if [[ $name == full-path ]]; then
    open_loop "$result"
  fi
  kill -TERM $pid; wait $pid || true
  local hz=$(getconf CLK_TCK)
  python3 - "$name" "$result" "$before" "$after" "$hz" "$rss" "$anon_before" "$anon_after" <<'PY'
import sys
name, result, before, after, hz, rss, anon_before, anon_after = sys.argv[1:]
fields = dict(kv.split("=") for kv in result.split()[1:])
requests = int(fields["requests"]); seconds = int(fields["duration_us"]) / 1e6
cpu_us = (int(after) - int(before)) / int(hz) * 1e6
print(f"| {name} | {requests / seconds:,.0f} | {int(fields['p50_us'])/1000:.2f} | {int(fields['p99_us'])/1000:.2f} | "
      f"{int(fields['p999_us'])/1000:.2f} | {cpu_us / max(requests,1):.1f} | {int(rss)/1024:.1f} | "
      f"{int(anon_before)/1024:.1f} → {int(anon_after)/1024:.1f} | {fields['errors']} |")
PY
}

# Open loop at half the closed-loop peak: h2load sends each client's
# requests at fixed times from a timing script (it does not wait for the
# previous answer to schedule the next), and logs every request's latency;
# percentiles are computed from that log. Each connection still has one
# request in flight, so if the server fell behind, requests would queue in
# the client: the log then shows it as latency, which is what we want.
open_loop() {
  local fields=$1
  local rate=$(python3 -c "import sys; f=dict(kv.split('=') for kv in sys.argv[1].split()[1:]); print(int(int(f['requests'])/(int(f['duration_us'])/1e6)/2))" "$fields")
  local per_client_interval_ms=$(python3 -c "print($connections * 1000 / $rate)")
  local count=$((rate * seconds / connections))
  python3 -c "
for i in range($count):
    print(f'{i * $per_client_interval_ms:.3f}\thttp://127.0.0.1:$port/stream/v0/data/$SLUICE_STREAM')" >"$work/timing.tsv"
  h2load --h1 -c "$connections" -t 1 --timing-script-file="$work/timing.tsv" \
    -d "$SLUICE_BODY_FILE" -H "Content-Type: application/json" -H "X-Amperity-Tenant: $SLUICE_TENANT" \
    -H "Authorization: Bearer $SLUICE_TOKEN" --log-file="$work/h2load.log" "http://127.0.0.1:$port" >"$work/h2load.out" 2>&1 || true
  python3 - "$work/h2load.log" "$rate" >&2 <<'PY'
import sys
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
latencies = sorted(int(r[2]) for r in rows)
statuses = {}
for r in rows:
    statuses[r[1]] = statuses.get(r[1], 0) + 1
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
print(f"open loop at {sys.argv[2]} requests/s (half of peak), {len(latencies)} requests, statuses {statuses}: "
      f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, p99.9 {pick(0.999):.2f} ms")
PY
}

echo "sluice load test: ${seconds}s, $connections connections, 300-byte JSON, $(nproc) cores, $(uname -r)"
echo "| mode | requests/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/request | peak RSS MiB | anon RSS MiB (start → end of run) | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
run_mode baseline SLUICE_NO_WORK_BASELINE=true
run_mode full-path SLUICE_NO_WORK_BASELINE=false
run_mode full-path-disk SLUICE_NO_WORK_BASELINE=false SLUICE_DURABILITY=disk
