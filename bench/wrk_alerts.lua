-- wrk script for bench/wrk_intake.py: every POST is an Alertmanager v4 webhook carrying
-- 3 NEW firing alerts (a fingerprint never sent before) spread over 500 Deployments.
-- Each wrk thread numbers its own alerts (thread id in the fingerprint), so the alerts
-- stay new across threads. done() prints one JSON line the Python side parses.
local counter = 0
local tid = 0
local threads = {}
local TARGETS = 500

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local run = 0

function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
  run = tonumber(args[1]) or 0     -- one number per wrk run: alerts new across runs too
end

local function one_alert(n)
  local dep = n % TARGETS
  local name = string.format("svc-%04d", dep)
  return string.format(
    '{"status":"firing","labels":{"alertname":"HighErrorRate","deployment":"%s",' ..
    '"instance":"1%d.%d.%d.%d:8080","job":"%s","namespace":"shop","severity":"critical"},' ..
    '"annotations":{"runbook_url":"https://runbooks.example/HighErrorRate",' ..
    '"summary":"5xx ratio above 5%% for 5m"},"startsAt":"2026-11-21T23:00:00Z",' ..
    '"endsAt":"0001-01-01T00:00:00Z",' ..
    '"generatorURL":"http://prometheus:9090/graph?g0.expr=job%%3Ahttp_errors",' ..
    '"fingerprint":"%02x%02x%012x"}',
    name, tid, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256, name, run, tid, n)
end

function request()
  local a = {}
  for i = 1, 3 do
    counter = counter + 1
    a[i] = one_alert(counter)
  end
  local body = '{"receiver":"remediator","status":"firing","alerts":[' ..
    table.concat(a, ",") .. '],"groupLabels":{"alertname":"HighErrorRate"},' ..
    '"commonLabels":{"alertname":"HighErrorRate","namespace":"shop"},' ..
    '"commonAnnotations":{},"externalURL":"http://am:9093","version":"4",' ..
    '"groupKey":"{}:{alertname=\\"HighErrorRate\\"}","truncatedAlerts":0}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
