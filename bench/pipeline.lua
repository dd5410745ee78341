-- wrk script: HTTP/1.1 pipelining, the standard wrk pattern.
-- Each connection writes DEPTH (default 8) `GET /` requests in one write and
-- waits for all DEPTH responses before it sends the next batch.
--
--   WRK_CONNECTIONS=64 wrk -t1 -c64 -d8s --latency -s pipeline.lua http://127.0.0.1:8081/
--   WRK_CONNECTIONS=64 wrk ... -s pipeline.lua http://127.0.0.1:8081/ -- 16   (depth 16)
--
-- wrk counts every response as one request (so req/s is per request), but it
-- records ONE latency sample per batch: the time from writing the batch to
-- reading its last response.
--
-- Why done() below exists: after the run, wrk 4.1 "corrects" its latency
-- histogram for coordinated omission with an expected interval of
-- duration / (responses / connections). With pipelining that interval is
-- DEPTH times too small (one sample per batch, DEPTH responses per batch), so
-- nearly every sample gets synthetic copies, many of them below the recorded
-- minimum where wrk's percentile code never looks: the "Latency Distribution"
-- wrk prints for a pipelined run is garbage (often "99% 0.00us"). done()
-- undoes wrk's correction exactly (the correction is deterministic and needs
-- only duration, responses and connections), then re-applies it with the
-- per-batch interval, i.e. the p99 wrk would print if it knew about
-- pipelining, and prints one line:
--
--   pipeline-latency: depth D connections C batches B ... p99_us X raw_p99_us Y ...
--
-- p99_us is comparable with wrk's own 99% figure for a non-pipelined run;
-- raw_p99_us is the uncorrected per-batch p99. done() runs in wrk's main Lua
-- state, where init() was never called, so the connection count comes from
-- the WRK_CONNECTIONS environment variable (and the depth from
-- WRK_PIPELINE_DEPTH when set; the script argument wins for requests).

local function env_num(name)
   return tonumber(os.getenv(name) or "")
end

local depth = env_num("WRK_PIPELINE_DEPTH") or 8
local req = nil

init = function(args)
   depth = tonumber(args[1]) or depth
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format("GET", "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end

-- Percentile as wrk computes it: rank = round(p/100 * count + 0.5).
local function percentile(hist, lo, hi, count, p)
   local rank = math.floor(p / 100 * count + 1.0)
   local total = 0
   for v = lo, hi do
      total = total + (hist[v] or 0)
      if total >= rank then return v end
   end
   return hi
end

done = function(summary, latency, requests)
   local conns = env_num("WRK_CONNECTIONS")
   if not conns or conns <= 0 then
      io.write("pipeline-latency: unavailable (set WRK_CONNECTIONS to wrk's -c value)\n")
      return
   end
   local floor = math.floor
   local complete, duration = summary.requests, summary.duration
   local lo, hi = latency.min, latency.max
   if complete == 0 or #latency == 0 then
      io.write("pipeline-latency: no samples\n")
      return
   end

   -- wrk's interval: runtime_us / (complete / connections), integer maths.
   local per_conn = floor(complete / conns)
   local e = per_conn > 0 and floor(duration / per_conn) or 0

   -- The histogram as wrk left it, buckets in [min, max] (1 us each).
   local data = {}
   for i = 1, #latency do
      local v, c = latency(i)
      data[v] = c
   end

   -- Undo stats_correct(): for every bucket n >= 2e it added data[n] to
   -- n-e, n-2e, ... while > e. So for m > e:
   --   data[m] = orig[m] + sum_{k>=1} orig[m + k e]
   -- Solve from the top down; acc[m] = sum_{k>=0} orig[m + k e].
   local orig, acc = {}, {}
   local batches, sum = 0, 0
   for m = hi, lo, -1 do
      local c = data[m] or 0
      if e > 0 and m > e then
         c = c - (acc[m + e] or 0)
         if c < 0 then c = 0 end
      end
      orig[m] = c
      if e > 0 then acc[m] = c + (acc[m + e] or 0) end
      batches = batches + c
      sum = sum + c * m
   end
   if batches == 0 then
      io.write("pipeline-latency: no samples\n")
      return
   end

   -- Re-apply the correction with the per-batch interval.
   local per_conn_b = floor(batches / conns)
   local eb = per_conn_b > 0 and floor(duration / per_conn_b) or 0
   local corr, acc2, count2 = {}, {}, 0
   for m = hi, 1, -1 do
      local o = orig[m] or 0
      local c = o
      if eb > 0 and m > eb then c = c + (acc2[m + eb] or 0) end
      if eb > 0 then acc2[m] = o + (acc2[m + eb] or 0) end
      corr[m] = c
      count2 = count2 + c
   end

   io.write(string.format(
      "pipeline-latency: depth %d connections %d batches %d expected_batches %d " ..
      "interval_us %d p50_us %d p90_us %d p99_us %d raw_p50_us %d raw_p99_us %d raw_mean_us %.1f max_us %d\n",
      depth, conns, batches, floor(complete / depth), eb,
      percentile(corr, 1, hi, count2, 50), percentile(corr, 1, hi, count2, 90),
      percentile(corr, 1, hi, count2, 99),
      percentile(orig, lo, hi, batches, 50), percentile(orig, lo, hi, batches, 99),
      sum / batches, hi))
end
