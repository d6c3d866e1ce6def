-- wrk script: replay pre-generated, signed Twilio webhook requests, each one once.
--
--   wrk -t2 -c16 -d15s -s requests.lua http://127.0.0.1:PORT/webhooks/twilio -- FILE THREADS
--
-- FILE (written by webhook_throughput.py): a first line with the number of requests, then
-- one request per line: "<X-Twilio-Signature>\t<form-encoded body>".
-- THREADS must equal wrk's -t. Thread k of THREADS replays its own contiguous slice of
-- the file, so no two threads (nor connections) send the same request. A thread that
-- runs out of requests starts its slice again and counts the repeats, which the driver
-- reports (the run is then invalid: generate more requests). "issued" counts the requests
-- each thread sent, so the driver knows exactly which ones (and how many STOPs) went out.
-- done() prints one line "WRK_RESULT {json}" for the driver to parse.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

function init(args)
   local path, nthreads = args[1], tonumber(args[2])
   local file = assert(io.open(path, "r"))
   local total = tonumber(file:read("*l"))
   first = math.floor(thread_id * total / nthreads)          -- 0-based index of the slice
   local last = math.floor((thread_id + 1) * total / nthreads) -- exclusive
   local headers = {
      ["Host"] = wrk.host .. ":" .. wrk.port,
      ["Content-Type"] = "application/x-www-form-urlencoded",
   }
   reqs = {}
   local index = 0
   for line in file:lines() do
      if index >= last then break end
      if index >= first then
         local signature, body = line:match("^([^\t]+)\t(.*)$")
         headers["X-Twilio-Signature"] = signature
         reqs[#reqs + 1] = wrk.format("POST", wrk.path, headers, body)
      end
      index = index + 1
   end
   file:close()
   count = #reqs
   issued = 0
   repeats = 0
   -- wrk 4 calls request() once on its first thread before the run, to inspect the
   -- request, and never sends it: answer that call without using up a request.
   inspecting = thread_id == 0
end

function request()
   if inspecting then
      inspecting = false
      return reqs[1]
   end
   issued = issued + 1
   if issued > count then
      repeats = repeats + 1
      return reqs[(issued - 1) % count + 1]
   end
   return reqs[issued]
end

function done(summary, latency, requests)
   local parts = {}
   for _, t in ipairs(threads) do
      parts[#parts + 1] = string.format(
         '{"id":%d,"first":%d,"count":%d,"issued":%d,"repeats":%d}',
         t:get("thread_id"), t:get("first"), t:get("count"), t:get("issued"), t:get("repeats"))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p99_9":%d},'
         .. '"threads":[%s]}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      table.concat(parts, ",")))
end
