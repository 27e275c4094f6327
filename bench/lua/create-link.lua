-- POST /v1/links with a fresh destination each time; KEY comes from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"destination_url":"https://shop.example/p/' .. n .. '?utm_source=bench","platform":"tiktok"}')
end
