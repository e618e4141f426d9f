-- wrk script for benches/harness.sh: POST one fixed body to a stream with
-- sluice's headers, and print one RESULT line with the latency percentiles.
--
-- Configured through the environment: SLUICE_STREAM, SLUICE_TENANT,
-- SLUICE_TOKEN, SLUICE_BODY_FILE, SLUICE_CONTENT_TYPE. The same script (so
-- the same bytes on the wire) is used for every server the harness compares.
--
-- Unlike benches/post.lua it defines no `response` hook: with one, wrk
-- hands every response's headers to Lua, which costs the client a good part
-- of its single core, and the client is the bottleneck on a 2-core machine.
-- wrk still counts every status of 400 or more in `summary.errors.status`,
-- which is what the harness reports as errors.
local function read_file(path)
  local file = assert(io.open(path, "rb"))
  local content = file:read("*a")
  file:close()
  return content
end

wrk.method = "POST"
wrk.path = "/stream/v0/data/" .. os.getenv("SLUICE_STREAM")
wrk.body = read_file(os.getenv("SLUICE_BODY_FILE"))
wrk.headers["Content-Type"] = os.getenv("SLUICE_CONTENT_TYPE") or "application/json"
wrk.headers["X-Amperity-Tenant"] = os.getenv("SLUICE_TENANT")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SLUICE_TOKEN")

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d errors=%d status_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    summary.errors.status))
end
