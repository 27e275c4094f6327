-- POST /v1/pixel/events with pixel ids nobody has, every one different: half random junk from 1 byte to
-- 60 KB, half shaped like real ids (px_ and 16 code characters). Each thread stops once it has had
-- JUNK_REQUESTS / JUNK_THREADS answers and then creates JUNK_DONE_DIR/<thread>, so that the script can end
-- the run (wrk itself runs for its whole -d); done() prints the answers by status.
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
local threads = {}
local alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
local junk_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_no)
  quota = math.ceil(tonumber(os.getenv("JUNK_REQUESTS")) / tonumber(os.getenv("JUNK_THREADS")))
  answers, by_status, sent = 0, {}, 0
  -- 60 KB of random characters, sliced at random for each junk id (building 60 KB per request would
  -- measure Lua, not the API).
  local chars = {}
  for i = 1, 60000 do
    local k = math.random(1, #junk_chars)
    chars[i] = string.sub(junk_chars, k, k)
  end
  blob = table.concat(chars)
end

local function shaped_id()
  local chars = {}
  for i = 1, 16 do
    local k = math.random(1, #alphabet)
    chars[i] = string.sub(alphabet, k, k)
  end
  return "px_" .. table.concat(chars)
end

request = function()
  sent = sent + 1
  local id
  if sent % 2 == 0 then
    id = shaped_id()
  else
    -- A distinct prefix, then up to 60,000 characters in all.
    local prefix = thread_no .. "-" .. sent .. "-"
    local len = math.random(1, 60000 - #prefix)
    local start = math.random(1, 60000 - len + 1)
    id = prefix .. string.sub(blob, start, start + len - 1)
  end
  return wrk.format(nil, nil, nil, '{"pixel_id":"' .. id .. '","event":"page_view"}')
end

response = function(status, headers, body)
  answers = answers + 1
  by_status[status] = (by_status[status] or 0) + 1
  if answers == quota then
    local marker = io.open(os.getenv("JUNK_DONE_DIR") .. "/" .. thread_no, "w")
    marker:close()
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("by_status")) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(totals) do
    table.insert(parts, status .. ": " .. n)
  end
  table.sort(parts)
  io.write("answers by status: " .. table.concat(parts, ", ") .. "\n")
end
