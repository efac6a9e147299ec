-- wrk script for bench/storm.py --schedule flood: posts every webhook of the storm file
-- (argument 1, JSON lines) once, in order, over wrk's connections as fast as the server
-- answers (run with -t1). It prints STORM_START when it sends the first webhook and
-- STORM_DONE at the last webhook's reply: the Python side times the storm by them and
-- stops wrk. Once the storm is all sent, a connection that is free asks GET /healthz
-- (not counted) until the last replies are in. done() prints one JSON line of counts.
local bodies = {}
sent = 0
probes = 0
-- counts, as plain numbers: done() reads them from the thread with thread:get()
replies, ok, failed, new, duplicate, resolved, unmatched, stale = 0, 0, 0, 0, 0, 0, 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
end

local verified = false

function request()
  -- wrk calls request() once on the first thread's state before any connection, to
  -- check it: that call must not use up a webhook
  if not verified then
    verified = true
    return wrk.format("GET", "/healthz")
  end
  if sent >= #bodies then
    probes = probes + 1
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  if sent == 1 then io.write("STORM_START\n"); io.flush() end
  return wrk.format("POST", "/api/v1/alerts", {["Content-Type"] = "application/json"},
                    bodies[sent])
end

local function count(body, name)
  local n = string.match(body, '"' .. name .. '": *(%d+)')
  return n and tonumber(n) or 0
end

function response(status, headers, body)
  -- a webhook's reply says "accepted" (or is an error); /healthz answers {"status": "alive"}
  if status == 200 and not string.find(body, "accepted", 1, true) then return end
  replies = replies + 1
  if status == 200 then ok = ok + 1 else failed = failed + 1 end
  new = new + count(body, "new")
  duplicate = duplicate + count(body, "duplicate")
  resolved = resolved + count(body, "resolved")
  unmatched = unmatched + count(body, "unmatched")
  stale = stale + count(body, "stale")
  if replies == #bodies then
    -- the Python side times the storm by these two lines and then stops wrk (SIGINT):
    -- wrk's own duration is the -d it was given, whenever its threads stop
    io.write("STORM_DONE\n"); io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t = {sent = 0, probes = 0, replies = 0, ok = 0, failed = 0, new = 0, duplicate = 0, resolved = 0,
             unmatched = 0, stale = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + (thread:get(name) or 0) end
  end
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"sent":%d,"probes":%d,"replies":%d,"ok":%d,"failed":%d,' ..
    '"new":%d,"duplicate":%d,"resolved":%d,"unmatched":%d,"stale":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,"timeout":%d,"connect":%d,"read":%d,"write":%d,"status_errors":%d}\n',
    summary.duration, summary.requests, t.sent, t.probes, t.replies, t.ok, t.failed, t.new, t.duplicate,
    t.resolved, t.unmatched, t.stale, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.timeout, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status))
end
