-- POST /internal/clicks with batches of 100 fresh clicks over the links in LINKS ("id:code,id:code,...").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("EDGE_INGEST_TOKEN")

local links = {}
for id, code in string.gmatch(os.getenv("LINKS"), "([%x%-]+):(%w+)") do
  links[#links + 1] = { id = id, code = code }
end
local agents = {
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 334.0.4.32.98",
}
local countries = { "US", "DE", "GB", "FR", "BR" }
local hex = "0123456789abcdef"

-- Each wrk thread has its own Lua state with the same default seed: seed from the state's own address,
-- or two threads would send the same click ids (and the second copy would only count as a duplicate).
function init(args)
  math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16))
end

local function uuid4()
  local t = {}
  for i = 1, 32 do
    local n = math.random(1, 16)
    if i == 13 then n = 5 elseif i == 17 then n = math.random(9, 12) end
    t[i] = string.sub(hex, n, n)
  end
  return table.concat(t)
end

-- Clicks of the last CLICK_SPREAD_MS milliseconds (default 5 minutes): the edge's queue hands the API
-- batches of clicks made seconds ago, so a batch's rollup rows fall in one or two hours. CLICK_SPREAD_MS=86400000
-- spreads each batch over the last day, as this script did before hourly rollups (ingestion refuses clicks
-- older than its horizon, CLICK_MAX_AGE_DAYS, 14 days).
local now_ms = os.time() * 1000
local spread_ms = tonumber(os.getenv("CLICK_SPREAD_MS") or "300000")

request = function()
  local events = {}
  for i = 1, 100 do
    local link = links[math.random(1, #links)]
    events[i] = string.format(
      '{"v":1,"click_id":"%s","code":"%s","link_id":"%s","occurred_at_ms":%d,"visitor_id":"%s","new_visitor":true,"bot":false,"country":"%s","referrer_host":"l.instagram.com","user_agent":"%s"}',
      uuid4(), link.code, link.id, now_ms - math.random(0, spread_ms), uuid4(),
      countries[math.random(1, #countries)], agents[math.random(1, #agents)])
  end
  return wrk.format(nil, nil, nil, '{"clicks":[' .. table.concat(events, ",") .. ']}')
end
