#!/usr/bin/env bash
# CI: the Postman collection of `sluice postman`, run with newman against a
# running appliance (issue 5). Starts `sluice serve` on a free port with a
# temporary data directory, creates a tenant, key, token and one JSON and one
# XML stream, generates the collection, and runs every request: each must be
# answered 202. Installs newman with npm into .ci/node if it is missing.
# Bounded in time; cleans up what it started.
#
# Environment: SLUICE_BIN (a built binary; default: `cargo build` and use
# target/debug/sluice), NEWMAN_TIMEOUT_S (default 120).
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s=${NEWMAN_TIMEOUT_S:-120}
prefix=.ci/node
newman=$prefix/node_modules/.bin/newman

if [[ ! -x $newman ]]; then
  command -v npm >/dev/null 2>&1 || { echo "newman.sh: npm is required" >&2; exit 1; }
  echo "== installing newman into $prefix"
  timeout "$timeout_s" npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error newman >/dev/null
fi

bin=${SLUICE_BIN:-}
if [[ -z $bin ]]; then
  echo "== cargo build"
  cargo build --locked --quiet
  bin=${CARGO_TARGET_DIR:-target}/debug/sluice
fi
bin=$(realpath "$bin")

work=$(mktemp -d -t sluice-newman.XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

sluice() { "$bin" --data-dir "$work/data" "$@"; }

echo "== tenant, key, token, streams"
tenant=newman
sluice tenant add "$tenant" 2>/dev/null
key=$(sluice key add --tenant "$tenant" --name newman)
token=$(sluice token generate --tenant "$tenant" --key "$key" --days 1)
sluice stream add --tenant "$tenant" --name events --format json --description "JSON events" >/dev/null
sluice stream add --tenant "$tenant" --name profiles --format xml --description "XML profiles" >/dev/null

echo "== sluice serve"
# Started directly (not through the function), so that $! is sluice itself.
"$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers 2 2>"$work/serve.log" &
server_pid=$!
addr=
for _ in $(seq 1 300); do
  addr=$(grep -o '"event":"listening","addr":"[^"]*"' "$work/serve.log" | head -n1 | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)
  [[ -n $addr ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $addr ]]; then
  echo "newman.sh: sluice serve did not start:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "listening on $addr"

echo "== sluice postman --tenant $tenant"
sluice postman --tenant "$tenant" >"$work/collection.json"

echo "== newman run"
timeout "$timeout_s" "$newman" run "$work/collection.json" \
  --env-var "host=http://$addr" \
  --env-var "tenant=$tenant" \
  --env-var "token=$token" \
  --timeout-request 10000 \
  --reporters cli,json --reporter-json-export "$work/report.json" \
  --color off --disable-unicode

# newman exits non-zero when a 202 assertion fails; this also proves that
# every stream was requested and every assertion ran.
node -e '
  const run = require(process.argv[1]).run;
  const requests = run.stats.requests, assertions = run.stats.assertions;
  const codes = run.executions.map((e) => e.response && e.response.code);
  console.log(`requests: ${requests.total}, failed: ${requests.failed}; assertions: ${assertions.total}, failed: ${assertions.failed}; statuses: ${codes.join(",")}`);
  if (requests.total !== 2 || requests.failed !== 0 || assertions.total !== 2 || assertions.failed !== 0 || codes.some((c) => c !== 202)) {
    console.error("newman.sh: expected 2 requests, each answered 202");
    process.exit(1);
  }
' "$work/report.json"

echo "== stop (SIGTERM drains and seals)"
kill -TERM "$server_pid"
for _ in $(seq 1 300); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
status=0
wait "$server_pid" || status=$?
server_pid=
if ((status != 0)); then
  echo "newman.sh: sluice serve exited $status" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
sealed=$(find "$work/data/tenants" -type f \( -name '*.ndjson' -o -name '*.cbor' \) | wc -l)
if ((sealed != 2)); then
  echo "newman.sh: expected 2 sealed files (one per stream), found $sealed" >&2
  exit 1
fi
echo "newman.sh: ok (2 requests, 202 each; 2 sealed files)"
