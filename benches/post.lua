-- wrk script: POST one fixed body to a stream with sluice's headers.
-- Configured through the environment: SLUICE_STREAM, SLUICE_TENANT,
-- SLUICE_TOKEN, SLUICE_BODY_FILE, SLUICE_CONTENT_TYPE.
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

local non202 = 0
function response(status, headers, body)
  if status ~= 202 then
    non202 = non202 + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
