-- wrk script for the local server's throughput run (scripts/bench): mixed valid and duplicate
-- webhooks, half Magicline (x-api-key, delivery id in `uuid`), half EGYM (x-api-key, account +
-- type + timestamp), a fixed number of requests per wrk thread.
--
-- Environment: BENCH_REQUESTS_PER_THREAD (default 10000), BENCH_RUN (a run id keeping keys of
-- different runs apart), BENCH_DUPLICATE_EVERY (default 5: every 5th request, once past the
-- first 1000, repeats a delivery this thread sent 501 requests earlier, long since answered).
--
-- BENCH_DONE_DIR: where each thread leaves a file once it has its answers, so that the caller can
-- end wrk (SIGINT) instead of waiting out -d, wrk's upper bound on the run's length.
--
-- Prints one JSON line (prefixed "BENCH_RESULT ") with the counts, the latency percentiles and the
-- elapsed time from the first request sent to the last answer received (CLOCK_MONOTONIC, via
-- LuaJIT's FFI), since wrk's own duration includes the wait for -d.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  table.insert(threads, thread)
end

local quota, run, duplicate_every
local sent, answered = 0, 0
status_counts = {}

function init(args)
  quota = tonumber(os.getenv("BENCH_REQUESTS_PER_THREAD") or "10000")
  run = os.getenv("BENCH_RUN") or "0"
  duplicate_every = tonumber(os.getenv("BENCH_DUPLICATE_EVERY") or "5")
  duplicates = 0
end

local magicline_headers = {
  ["Content-Type"] = "application/json",
  ["x-api-key"] = "ml-demo-key-1001-new",
}
local egym_headers = {
  ["Content-Type"] = "application/json",
  ["x-api-key"] = "egym-demo-secret-berlin",
}

local function webhook(seq)
  if seq % 2 == 0 then
    local body = string.format(
      '{"entityId": %d, "uuid": "%08x-%04x-4c33-8e9c-%012x", "payload": [{"timestamp": 1795640400000, "type": "CUSTOMER_CREATED"}]}',
      7000000 + seq % 1000, tonumber(run) % 4294967296, thread_index, seq)
    return wrk.format("POST", "/webhooks/magicline", magicline_headers, body)
  else
    local body = string.format(
      '{"accountId": "3f1c2a9e-5b7d-%04x-a0c1-%012x", "timestamp": %d, "type": "GYM_CHECKIN"}',
      thread_index, tonumber(run) % 281474976710656, 1795640400000 + seq)
    return wrk.format("POST", "/webhooks/egym", egym_headers, body)
  end
end

function request()
  if first_us == nil then
    first_us = now_us()
  end
  sent = sent + 1
  local seq = sent
  if sent > 1000 and sent % duplicate_every == 0 then
    seq = sent - 501
    duplicates = duplicates + 1
  end
  return webhook(seq)
end

function response(status, headers, body)
  answered = answered + 1
  last_us = now_us()
  local key = "s" .. status
  status_counts[key] = (status_counts[key] or 0) + 1
  if answered == quota then
    local done_dir = os.getenv("BENCH_DONE_DIR")
    if done_dir then
      local marker = io.open(done_dir .. "/thread-" .. thread_index, "w")
      if marker then
        marker:write(tostring(answered))
        marker:close()
      end
    end
  end
  if answered >= quota then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local statuses = {}
  local total_duplicates = 0
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    local thread_first, thread_last = thread:get("first_us"), thread:get("last_us")
    if thread_first and (first == nil or thread_first < first) then first = thread_first end
    if thread_last and (last == nil or thread_last > last) then last = thread_last end
    local counts = thread:get("status_counts")
    for key, count in pairs(counts) do
      statuses[key] = (statuses[key] or 0) + count
    end
    total_duplicates = total_duplicates + thread:get("duplicates")
  end
  local parts = {}
  for key, count in pairs(statuses) do
    table.insert(parts, string.format('"%s": %d', string.sub(key, 2), count))
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "wrk_duration_us": %d, "duplicates_sent": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, ' ..
    '"max": %d, "mean": %.1f}}\n',
    summary.requests, (last or 0) - (first or 0), summary.duration, total_duplicates,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, table.concat(parts, ", "),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
