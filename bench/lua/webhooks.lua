-- POST /v1/webhooks/shopify with pre-signed deliveries (an HMAC per body is too slow to compute in Lua).
-- WEBHOOKS names files "<prefix>.<thread>.tsv", one per wrk thread, each line
-- "webhook id <TAB> base64 HMAC <TAB> compact JSON body"; SHOP is the connected shop's domain.
-- A thread that reaches the end of its file starts again: those requests are redeliveries (answered
-- "duplicate", not counted by bench/webhooks.sh, which counts processed deliveries in the database).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Shopify-Topic"] = "orders/create"
wrk.headers["X-Shopify-Shop-Domain"] = os.getenv("SHOP")
wrk.headers["X-Shopify-Api-Version"] = "2025-07"

local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local file
local function next_line()
  local line = file and file:read("*l")
  if not line then
    if file then file:close() end
    file = assert(io.open(os.getenv("WEBHOOKS") .. "." .. index .. ".tsv", "r"))
    line = assert(file:read("*l"), "empty webhook file")
  end
  return line
end

request = function()
  local id, signature, body = string.match(next_line(), "^([^\t]+)\t([^\t]+)\t(.*)$")
  -- wrk.format takes these headers instead of wrk.headers, not in addition to them.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["X-Shopify-Webhook-Id"] = id
  headers["X-Shopify-Hmac-Sha256"] = signature
  return wrk.format(nil, nil, headers, body)
end
