-- wrk script of tools/load.py. `wrk ... -s tools/load.lua URL -- get` sends GETs to URL's path;
-- `-- ingest NONCE` POSTs OpenLineage START events, each with a run id of its own (nonce, thread, counter).
-- At the end it prints one JSON line: requests, latency percentiles (microseconds) and errors.
local mode = "get"
local nonce = 0
local counter = 0
local threads = {}

function setup(thread)
    thread:set("thread_id", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    mode = args[1] or "get"
    nonce = tonumber(args[2] or "0")
end

local function body(run_id)
    return string.format(
        '{"eventType":"START","eventTime":"2026-12-01T00:00:00.000Z","producer":"https://github.com/clew/load",' ..
        '"schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",' ..
        '"run":{"runId":"%s"},"job":{"namespace":"load","name":"job%d"},' ..
        '"inputs":[{"namespace":"load","name":"in%d"}],"outputs":[{"namespace":"load","name":"out%d"}]}',
        run_id, counter % 50, counter % 7, counter % 50)
end

function request()
    if mode == "ingest" then
        counter = counter + 1
        -- thread_id is set by setup() in this thread's own Lua state; the nonce differs per wrk process.
        local run_id = string.format("%08x-%04x-4000-8000-%012x", nonce, thread_id, counter)
        -- wrk.format takes the headers given instead of wrk.headers: copy them (the token is one).
        local headers = {["Content-Type"] = "application/json"}
        for k, v in pairs(wrk.headers) do headers[k] = v end
        return wrk.format("POST", nil, headers, body(run_id))
    end
    return wrk.format("GET")
end

function done(summary, latency, requests)
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
