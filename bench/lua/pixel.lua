-- POST /v1/pixel/events as storefronts send them (text/plain JSON): 80% page views, 10% add to cart,
-- 10% purchases with fresh order ids. PIXEL_ID and CS_REF come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
local pixel = os.getenv("PIXEL_ID")
local ref = os.getenv("CS_REF")
local n = 0

function init(args)
  math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16))
  prefix = tostring(math.random(1, 1000000000))
end

request = function()
  n = n + 1
  local r = math.random(1, 10)
  local body
  if r <= 8 then
    body = string.format('{"pixel_id":"%s","event":"page_view","cs_ref":"%s","url":"https://shop.example/p/%d"}', pixel, ref, n)
  elseif r == 9 then
    body = string.format('{"pixel_id":"%s","event":"add_to_cart","cs_ref":"%s","value":"19.90","currency":"USD"}', pixel, ref)
  else
    body = string.format('{"pixel_id":"%s","event":"purchase","cs_ref":"%s","order_id":"%s-%d","value":"59.90","currency":"USD"}', pixel, ref, prefix, n)
  end
  return wrk.format(nil, nil, nil, body)
end
