-- POST /v1/conversions: every request a new order (its own order id) under its own Idempotency-Key, each
-- naming the bench click (cs_ref) so it is credited. KEY, CS_REF and OCCURRED_AT come from the environment.
-- Ids are "<start time>-<random>-<thread>-<counter>": distinct across threads, runs and reruns.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
local ref = os.getenv("CS_REF")
local at = os.getenv("OCCURRED_AT")

local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local n = 0
function init(args)
  math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16))
  prefix = string.format("%d-%d-%d", os.time(), math.random(1, 1000000000), index)
end

request = function()
  n = n + 1
  local id = prefix .. "-" .. n
  -- wrk.format takes these headers instead of wrk.headers, not in addition to them.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = "bench-" .. id
  local body = string.format(
    '{"order_id":"%s","amount":{"amount_minor":%d,"currency":"USD"},"occurred_at":"%s","cs_ref":"%s"}',
    id, 1000 + n % 9000, at, ref)
  return wrk.format(nil, nil, headers, body)
end
