#!/usr/bin/env bash
# Load harness: sluice against its peers, in one run, on this machine.
#
#   benches/harness.sh [SECONDS]
#
# Builds release; installs wrk, h2load (nghttp2-client) and nginx with
# apt-get if missing; sets up a tenant, key, token, a JSON and an XML stream
# in a temporary data directory; then, for every payload (JSON ~300 B,
# JSON 4 KiB, JSON 254 KiB, XML ~1 KiB) and every connection count (64 and
# 512 keep-alive connections, closed loop with wrk), runs each server:
#
#   full-path       sluice, durability = "process" (the default)
#   full-path-disk  sluice, durability = "disk"
#   baseline        sluice's no-work baseline (202 without auth, conversion
#                   or storage: the floor of sluice's own HTTP layer)
#   nginx-202       nginx answering 202 (benches/nginx/accept.conf)
#   nginx-collector nginx appending every body to a file
#                   (benches/nginx/collector.conf)
#
# Each case gets a fresh server process and data directory, a 2-second
# warm-up, then SECONDS of measurement (default 10). It reports
# requests/s, MB/s (requests/s x body bytes), p50/p99/p99.9 latency, server
# CPU per request (user+sys from /proc over the measured run / requests;
# nginx: master plus workers) and peak RSS (VmHWM; nginx: sum of workers).
# Then an open-loop run (h2load, fixed schedule per connection) against the
# full path at half its closed-loop peak for 300-byte JSON at 64
# connections, and the issue 6 targets, met or not, with their numbers.
#
# Results go to benches/results/latest.md and stdout. Before measuring it
# waits (up to 10 minutes) for the 1-minute load average to drop below 1.5,
# because the machine is shared. Traffic goes to 127.0.0.1 only; every
# run is bounded by SECONDS.
#
# Environment: SLUICE_BENCH_PORT (default 18180; the admin port is +1 and
# nginx +2), SLUICE_BENCH_LOAD_MAX (default 1.5), SLUICE_BENCH_LOAD_WAIT_SECONDS
# (default 600), SLUICE_BENCH_RESULTS (default benches/results/latest.md;
# the raw rows go beside it, as latest-rows.tsv and latest-open-loop.tsv).
# The data directories live under $TMPDIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
port=${SLUICE_BENCH_PORT:-18180}
admin_port=$((port + 1))
nginx_port=$((port + 2))
warmup_seconds=2
load_max=${SLUICE_BENCH_LOAD_MAX:-1.5}
load_wait_seconds=${SLUICE_BENCH_LOAD_WAIT_SECONDS:-600}
results=${SLUICE_BENCH_RESULTS:-benches/results/latest.md}
payloads=(json-300 json-4k json-254k xml-1k)
connection_counts=(64 512)
servers=(full-path full-path-disk baseline nginx-202 nginx-collector)

# --- Tools -----------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx)
if ((${#missing[@]})); then
  nginx_was_running=$([[ -e /run/nginx.pid ]] && echo yes || echo no)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's package starts the nginx service where it can; stop it if we
  # were the ones who started it, so only our own foreground nginx runs.
  if [[ $nginx_was_running == no && -e /run/nginx.pid ]]; then
    service nginx stop >/dev/null 2>&1 || nginx -s quit 2>/dev/null || true
  fi
fi
# 512 connections plus the server's own descriptors need more than the
# usual soft limit of 1024; take the hard limit, up to 65536.
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 65536 ]]; then hard=65536; fi
ulimit -n "$hard"

cargo build --release --quiet
bin=$PWD/target/release/sluice
work=$(mktemp -d)
server_pid=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# --- Tenant, key, token, streams and bodies ---------------------------------
export SLUICE_DATA_DIR=$work/template
$bin tenant add bench >/dev/null 2>&1
key=$($bin key add --tenant bench --name load 2>/dev/null)
export SLUICE_TOKEN=$($bin token generate --tenant bench --key "$key" --days 1 2>/dev/null)
export SLUICE_TENANT=bench
json_stream=$($bin stream add --tenant bench --name load-json --format json 2>/dev/null)
xml_stream=$($bin stream add --tenant bench --name load-xml --format xml 2>/dev/null)
unset SLUICE_DATA_DIR

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def dumps(value):
    # Compact, as a sender's JSON library writes it by default.
    return json.dumps(value, separators=(",", ":"))
def record(i):
    return {"event_id": f"0f8fad5b-d9cb-469f-a165-{i:012d}", "event_type": "page_view",
            "customer_id": "C-000123456", "email": "someone@example.com",
            "url": "https://shop.example.com/products/blue-widget?ref=home",
            "ts": "2026-11-27T07:15:00.000Z", "amount": 19.99,
            "tags": ["web", "promo"], "session": {"id": "s-42", "n": 7}}
def padded(text, size):
    # Trailing whitespace is insignificant JSON and brings every body to its
    # exact size; it is at most one record long.
    assert len(text) <= size, (len(text), size)
    return text + " " * (size - len(text))
def batch(size):
    # One object holding as many whole records as fit: a realistic large
    # body (many values to validate), not one huge string.
    records, text = [], ""
    while True:
        candidate = dumps({"batch": "b-1", "events": records + [record(len(records))]})
        if len(candidate) > size:
            return padded(text, size)
        records.append(record(len(records)))
        text = candidate
bodies = {
    "json-300": padded(dumps(record(0)), 300),
    "json-4k": batch(4096),
    # Just under the 254 KiB (260,096-byte) body limit.
    "json-254k": batch(260_000),
}
items = "".join(
    f'<item sku="SKU-{i:05d}" qty="{i % 7 + 1}"><name>Blue widget {i}</name>'
    f'<price currency="USD">19.99</price></item>' for i in range(8))
xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<order id="O-000123456" xmlns:ex="urn:example">'
       '<customer id="C-000123456"><email>someone@example.com</email></customer>'
       f'<ex:channel>web</ex:channel><items>{items}</items><total>159.92</total></order>')
bodies["xml-1k"] = xml
for name, body in bodies.items():
    open(f"{work}/{name}.body", "w").write(body)
PY
body_bytes() { stat -c %s "$work/$1.body"; }
content_type() { [[ $1 == xml-* ]] && echo application/xml || echo application/json; }
stream_for() { [[ $1 == xml-* ]] && echo "$xml_stream" || echo "$json_stream"; }

# --- Process accounting -----------------------------------------------------
# CPU ticks (utime + stime, every thread) summed over the given processes.
cpu_ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo $total; }
# Peak resident set (VmHWM) in KiB, summed over the given processes.
peak_rss_kb() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status"))); done; echo $total; }

wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not open port $1" >&2
  return 1
}

# Starts one server for one case in $case_dir; sets server_pid and
# counted_pids (the processes whose CPU and RSS are the server's).
start_server() {
  local server=$1 case_dir=$2
  mkdir -p "$case_dir"
  case $server in
    full-path | full-path-disk | baseline)
      cp -a "$work/template" "$case_dir/data"
      local durability=process no_work=false
      [[ $server == full-path-disk ]] && durability=disk
      [[ $server == baseline ]] && no_work=true
      SLUICE_DATA_DIR=$case_dir/data SLUICE_DURABILITY=$durability SLUICE_NO_WORK_BASELINE=$no_work \
        $bin serve --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin_port 2>"$case_dir/server.log" &
      server_pid=$!
      for _ in $(seq 100); do
        grep -q '"event":"ready"' "$case_dir/server.log" 2>/dev/null && break
        sleep 0.1
      done
      wait_for_port $port
      counted_pids=$server_pid
      ;;
    nginx-202 | nginx-collector)
      local conf=accept
      [[ $server == nginx-collector ]] && conf=collector
      sed "s/127\.0\.0\.1:18182/127.0.0.1:$nginx_port/" "benches/nginx/$conf.conf" >"$case_dir/nginx.conf"
      nginx -p "$case_dir/" -c "$case_dir/nginx.conf" 2>"$case_dir/server.log" &
      server_pid=$!
      wait_for_port $nginx_port
      # The master binds before it forks; wait until both workers exist so
      # that their CPU and memory are counted.
      for _ in $(seq 50); do
        (($(pgrep -c -P "$server_pid") >= 2)) && break
        sleep 0.1
      done
      counted_pids="$server_pid $(pgrep -P "$server_pid" | tr '\n' ' ')"
      ;;
  esac
}

server_port() { [[ $1 == nginx-* ]] && echo $nginx_port || echo $port; }

# Runs one closed-loop case and appends one row to $work/rows.tsv.
run_case() {
  local payload=$1 connections=$2 server=$3
  local case_dir=$work/case
  start_server "$server" "$case_dir"
  local url=http://127.0.0.1:$(server_port "$server")
  export SLUICE_BODY_FILE=$work/$payload.body SLUICE_STREAM=$(stream_for "$payload")
  export SLUICE_CONTENT_TYPE=$(content_type "$payload")
  wrk -t1 -c"$connections" -d${warmup_seconds}s -s benches/harness.lua "$url" >/dev/null
  local before=$(cpu_ticks $counted_pids)
  local result=$(wrk -t1 -c"$connections" -d"${seconds}s" -s benches/harness.lua "$url" | grep '^RESULT')
  local after=$(cpu_ticks $counted_pids)
  local rss_pids=$counted_pids
  # nginx's master only forks and waits; its workers hold the connections
  # and buffers, so their peaks are what nginx needs.
  [[ $server == nginx-* ]] && rss_pids=$(pgrep -P "$server_pid" | tr '\n' ' ')
  local rss=$(peak_rss_kb $rss_pids)
  if [[ $server == nginx-collector ]]; then
    # Graceful stop flushes the access-log buffer; then check the file holds
    # at least every measured body (each plus its newline).
    kill -QUIT "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    local stored=$(stat -c %s "$case_dir/bodies.log")
    python3 -c "
import sys
f = dict(kv.split('=') for kv in sys.argv[1].split()[1:])
need = int(f['requests']) * ($(body_bytes "$payload") + 1)
if $stored < need: print(f'warning: collector stored $stored bytes, fewer than {need}', file=sys.stderr)" "$result"
  fi
  stop_server
  rm -rf "$case_dir"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$payload" "$connections" "$server" "$(body_bytes "$payload")" \
    "$result" $((after - before)) "$rss" "$(getconf CLK_TCK)" >>"$work/rows.tsv"
  echo "  $payload $connections $server: $result" >&2
}

# Open loop at half the full path's closed-loop peak (300-byte JSON, 64
# connections), without coordinated omission: h2load sends each
# connection's requests at fixed times from a timing script (one request
# per schedule entry, absolute URLs), whether or not the previous answer
# came back, and logs each request's latency; percentiles come from that
# log. A request that waits in the client because the server fell behind
# shows up as latency, which is the point.
open_loop() {
  local connections=64 payload=json-300
  local peak=$(awk -F'\t' -v p=$payload -v c=$connections '$1 == p && $2 == c && $3 == "full-path" {print $5}' "$work/rows.tsv")
  local rate=$(python3 -c "import sys; f=dict(kv.split('=') for kv in sys.argv[1].split()[1:]); print(int(int(f['requests'])/(int(f['duration_us'])/1e6)/2))" "$peak")
  local per_client_interval_ms=$(python3 -c "print($connections * 1000 / $rate)")
  local count=$((rate * seconds / connections))
  local case_dir=$work/case
  start_server full-path "$case_dir"
  python3 -c "
for i in range($count):
    print(f'{i * $per_client_interval_ms:.3f}\thttp://127.0.0.1:$port/stream/v0/data/$json_stream')" >"$work/timing.tsv"
  export SLUICE_BODY_FILE=$work/$payload.body SLUICE_STREAM=$json_stream SLUICE_CONTENT_TYPE=application/json
  wrk -t1 -c"$connections" -d${warmup_seconds}s -s benches/harness.lua "http://127.0.0.1:$port" >/dev/null
  h2load --h1 -c "$connections" -t 1 --timing-script-file="$work/timing.tsv" \
    -d "$SLUICE_BODY_FILE" -H "Content-Type: application/json" -H "X-Amperity-Tenant: $SLUICE_TENANT" \
    -H "Authorization: Bearer $SLUICE_TOKEN" --log-file="$work/h2load.log" "http://127.0.0.1:$port" \
    >"$work/h2load.out" 2>&1 || true
  stop_server
  rm -rf "$case_dir"
  python3 - "$work/h2load.log" "$rate" "$connections" "$count" >"$work/open_loop.tsv" <<'PY'
import sys
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
latencies = sorted(int(r[2]) for r in rows)
statuses = {}
for r in rows:
    statuses[r[1]] = statuses.get(r[1], 0) + 1
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000 if latencies else float("nan")
expected = int(sys.argv[3]) * int(sys.argv[4])
status_text = ", ".join(f"{code}: {n:,}" for code, n in sorted(statuses.items()))
print(f"{sys.argv[2]}\t{len(latencies)}\t{expected}\t{status_text}\t{pick(0.5):.3f}\t{pick(0.99):.3f}\t{pick(0.999):.3f}")
PY
}

# --- Quiet machine ----------------------------------------------------------
load_now() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while python3 -c "import sys; sys.exit(0 if float('$(load_now)') >= $load_max else 1)" && ((waited < load_wait_seconds)); do
  ((waited == 0)) && echo "waiting for the 1-minute load average ($(load_now)) to drop below $load_max" >&2
  sleep 10
  waited=$((waited + 10))
done
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# --- The run ----------------------------------------------------------------
: >"$work/rows.tsv"
echo "harness: ${seconds}s per case, load average at start $load_at_start" >&2
for payload in "${payloads[@]}"; do
  for connections in "${connection_counts[@]}"; do
    for server in "${servers[@]}"; do
      run_case "$payload" "$connections" "$server"
    done
  done
done
open_loop
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report -----------------------------------------------------------------
# The raw measurements go next to the report, so that it can be checked or
# reformatted without a rerun.
mkdir -p "$(dirname "$results")"
cp "$work/rows.tsv" "${results%.md}-rows.tsv"
cp "$work/open_loop.tsv" "${results%.md}-open-loop.tsv"
python3 - "$work/rows.tsv" "$work/open_loop.tsv" >"$results" <<PY
import sys, platform, subprocess
rows = []
for line in open(sys.argv[1]):
    payload, conns, server, size, result, ticks, rss, hz = line.rstrip("\n").split("\t")
    f = dict(kv.split("=") for kv in result.split()[1:])
    requests = int(f["requests"]); duration = int(f["duration_us"]) / 1e6
    cpu_s = int(ticks) / int(hz)
    rows.append(dict(payload=payload, conns=int(conns), server=server, size=int(size),
                     requests=requests, rps=requests / duration, mbps=requests * int(size) / duration / 1e6,
                     p50=int(f["p50_us"]) / 1000, p99=int(f["p99_us"]) / 1000, p999=int(f["p999_us"]) / 1000,
                     cpu_us=cpu_s * 1e6 / max(requests, 1), cpu_s=cpu_s, rss=int(rss) / 1024,
                     errors=int(f["errors"]), status_errors=int(f["status_errors"])))
ol_rate, ol_n, ol_expected, ol_statuses, ol_p50, ol_p99, ol_p999 = open(sys.argv[2]).read().rstrip("\n").split("\t")
def get(payload, conns, server):
    return next(r for r in rows if (r["payload"], r["conns"], r["server"]) == (payload, conns, server))
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: nginx/", "")
size = {r["payload"]: r["size"] for r in rows}
titles = {"json-300": "JSON, 300 bytes", "json-4k": "JSON, 4 KiB (4,096 bytes)",
          "json-254k": f"JSON, 254 KiB ({size['json-254k']:,} bytes, just under the 260,096-byte limit)",
          "xml-1k": f"XML, ~1 KiB ({size['xml-1k']:,} bytes)"}
print("# Load harness: latest result\n")
print(f"\`benches/harness.sh $seconds\`, $started. Every case: a fresh server and data directory, "
      f"{$warmup_seconds} s warm-up, then $seconds s closed loop with \`wrk -t1\` (one client thread) over "
      "keep-alive connections, all on 127.0.0.1.\n")
print(f"Machine: {$(nproc)} CPUs ({model}), {mem_kb / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}; "
      f"nginx {nginx}, wrk and h2load from Debian. Client and server share the machine, so the client "
      "takes one of the cores. 1/5/15-minute load average at start: $load_at_start "
      "(the harness waits for the 1-minute figure to drop below $load_max, up to ${load_wait_seconds} s; "
      "waited ${waited} s); at the end: $load_at_end (the bench's own load included).\n")
print("Servers: **full-path** = sluice, \`durability = \"process\"\` (default); **full-path-disk** = sluice, "
      "\`durability = \"disk\"\`; **baseline** = sluice's no-work baseline (\`SLUICE_NO_WORK_BASELINE=true\`: 202 "
      "without auth, conversion or storage); **nginx-202** = nginx answering 202 "
      "(benches/nginx/accept.conf); **nginx-collector** = nginx appending every body to one file "
      "(benches/nginx/collector.conf). sluice and nginx both run 2 workers.\n")
print("MB/s = requests/s x body bytes. Server CPU = user+sys of the server process(es) over the measured "
      "run / requests (nginx: master + workers). Peak RSS = VmHWM (nginx: sum of workers). "
      "Errors = responses with a status of 400 or more / socket errors (with wrk these are "
      "requests unanswered after its 2-second timeout).\n")
for payload in [$(printf '"%s", ' "${payloads[@]}")]:
    print(f"## {titles[payload]}\n")
    print("| server | conns | requests/s | MB/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/request | peak RSS MiB | errors (status / socket) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["payload"] == payload:
            print(f"| {r['server']} | {r['conns']} | {r['rps']:,.0f} | {r['mbps']:,.1f} | {r['p50']:.2f} | "
                  f"{r['p99']:.2f} | {r['p999']:.2f} | {r['cpu_us']:,.1f} | {r['rss']:.1f} | {r['status_errors']:,} / {r['errors'] - r['status_errors']:,} |")
    print()
print("## Open loop\n")
print(f"Full path, 300-byte JSON, 64 connections, h2load at a fixed {int(ol_rate):,} requests/s "
      f"(half the closed-loop peak above), each connection on its own schedule for $seconds s: "
      f"{int(ol_n):,} of {int(ol_expected):,} scheduled requests logged (statuses {ol_statuses}); "
      f"p50 {float(ol_p50):.2f} ms, p99 {float(ol_p99):.2f} ms, p99.9 {float(ol_p999):.2f} ms.\n")
print("## Targets (issue 6)\n")
def line(ok, text):
    print(f"- {'met' if ok else '**not met**'}: {text}")
full, base, coll = get("json-300", 64, "full-path"), get("json-300", 64, "baseline"), get("json-300", 64, "nginx-collector")
ratio = full["rps"] / base["rps"]
line(ratio >= 0.85, f"full path ≥ 0.85× its no-work baseline, 64 conns, 300 B JSON: {full['rps']:,.0f} / {base['rps']:,.0f} = {ratio:.2f}×")
ratio = full["rps"] / coll["rps"]
line(ratio >= 1.0, f"full path ≥ 1.0× the nginx collector, 64 conns, 300 B JSON: {full['rps']:,.0f} / {coll['rps']:,.0f} = {ratio:.2f}×")
big = get("json-254k", 64, "full-path")
per_core = big["requests"] * big["size"] / big["cpu_s"] / 1e9 if big["cpu_s"] else float("inf")
line(per_core >= 1.0, f"254 KiB JSON ≥ 1 GB/s per core validated and stored (64 conns, bytes / server CPU seconds): "
     f"{per_core:.2f} GB/s per core ({big['mbps']:,.0f} MB/s wall clock on {$(nproc)} cores shared with the client)")
for payload in [$(printf '"%s", ' "${payloads[@]}")]:
    disk, proc = get(payload, 64, "full-path-disk"), get(payload, 64, "full-path")
    ratio = disk["rps"] / proc["rps"]
    line(ratio >= 0.5, f"\`disk\` ≥ 0.5× \`process\` mode, 64 conns, {titles[payload]}: {disk['rps']:,.0f} / {proc['rps']:,.0f} = {ratio:.2f}×")
line(float(ol_p99) <= 2.0 and int(ol_n) == int(ol_expected), f"p99 ≤ 2 ms at half of peak, open loop: p99 {float(ol_p99):.2f} ms at {int(ol_rate):,} requests/s")
PY
cat "$results"
