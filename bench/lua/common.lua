-- Shared by every load script (prepended by bench/load.py).
-- Arguments after `--`: <api key or "-"> <file of customer ids, one per line> <path prefix>

local ids = {}
local key, prefix

local function load_ids(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  assert(#out > 0, "no customer ids in " .. path)
  return out
end

local thread_number = 0
function setup(thread)
  thread_number = thread_number + 1
  thread:set("seed", thread_number)
end

function init(args)
  key, ids, prefix = args[1], load_ids(args[2]), args[3] or ""
  math.randomseed(os.time() * 1000 + (seed or 0))
  if key ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  wrk.headers["Accept"] = "application/json"
end

local function random_id()
  return ids[math.random(#ids)]
end

-- wrk.format uses the headers given *instead of* wrk.headers: carry the key over.
local json_headers_made
local function json_headers()
  if not json_headers_made then
    json_headers_made = { ["Content-Type"] = "application/json" }
    for name, value in pairs(wrk.headers) do json_headers_made[name] = value end
  end
  return json_headers_made
end

-- One line the runner can parse: wrk's own summary of the run (latencies in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"latency_mean_us":%.1f,"latency_p50_us":%d,"latency_p90_us":%d,"latency_p99_us":%d,' ..
    '"latency_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
