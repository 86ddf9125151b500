-- Every signal of a group of concurrent scans in one call (the group is what one event-loop turn
-- queued). ARGV is a list of operations, each taking its keys from KEYS in order:
--   'w', window, elapsed  sliding-window counter over this and the previous fixed window (2 keys):
--                         replies the count estimated over the last `window` seconds (the previous
--                         window weighted by how much of it still lies in that span), and the
--                         seconds until the current window ends
--   'c', device_id, ttl   per-code counter and distinct-device sketch (2 keys): replies count, devices
--   'r', value, ttl       per-code distinct-value sketch (1 key: regions, or members): replies the
--                         distinct values, 0
--   'b', window_ttl       per-code burst window and leak flag (2 keys): replies the code's scans in this
--                         window, and 1 when it was scanned before activation (else 0)
--   'l', ttl              the code was scanned before activation (1 key): replies 1, 0
--   't', lat, lng, now, ttl
--                         per-code last located scan (1 key): replies the km and seconds from the
--                         previous located scan (-1, -1 for the first), then remembers this one
-- The reply is the flat list of every operation's two numbers, in order.
local out = {}
local k = 1
local a = 1
while a <= #ARGV do
  if ARGV[a] == 'w' then
    local current, previous = KEYS[k], KEYS[k + 1]
    local window, elapsed = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local count = redis.call('INCR', current)
    if count == 1 then
      redis.call('EXPIRE', current, 2 * window)
    end
    local before = tonumber(redis.call('GET', previous) or '0')
    out[#out + 1] = count + math.floor(before * (window - elapsed) / window)
    out[#out + 1] = window - elapsed
    k = k + 2
    a = a + 3
  elseif ARGV[a] == 'r' then
    local sketch = KEYS[k]
    redis.call('PFADD', sketch, ARGV[a + 1])
    redis.call('EXPIRE', sketch, ARGV[a + 2])
    out[#out + 1] = redis.call('PFCOUNT', sketch)
    out[#out + 1] = 0
    k = k + 1
    a = a + 3
  elseif ARGV[a] == 'b' then
    local window, leak = KEYS[k], KEYS[k + 1]
    local count = redis.call('INCR', window)
    if count == 1 then
      redis.call('EXPIRE', window, ARGV[a + 1])
    end
    out[#out + 1] = count
    out[#out + 1] = redis.call('EXISTS', leak)
    k = k + 2
    a = a + 2
  elseif ARGV[a] == 'l' then
    redis.call('SET', KEYS[k], 1, 'EX', ARGV[a + 1])
    out[#out + 1] = 1
    out[#out + 1] = 0
    k = k + 1
    a = a + 2
  elseif ARGV[a] == 't' then
    local key = KEYS[k]
    local lat, lng, now = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local last = redis.call('HMGET', key, 'lat', 'lng', 'at')
    if last[1] then
      -- Great-circle distance (haversine, mean Earth radius), whole km and seconds.
      local p1, p2 = math.rad(tonumber(last[1])), math.rad(lat)
      local dp, dl = p2 - p1, math.rad(lng - tonumber(last[2]))
      local h = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
      out[#out + 1] = math.floor(2 * 6371 * math.asin(math.sqrt(h)))
      out[#out + 1] = math.max(0, now - tonumber(last[3]))
    else
      out[#out + 1] = -1
      out[#out + 1] = -1
    end
    redis.call('HSET', key, 'lat', ARGV[a + 1], 'lng', ARGV[a + 2], 'at', ARGV[a + 3])
    redis.call('EXPIRE', key, ARGV[a + 4])
    k = k + 1
    a = a + 5
  else
    local counter, sketch = KEYS[k], KEYS[k + 1]
    local count = redis.call('INCR', counter)
    redis.call('PFADD', sketch, ARGV[a + 1])
    redis.call('EXPIRE', counter, ARGV[a + 2])
    redis.call('EXPIRE', sketch, ARGV[a + 2])
    out[#out + 1] = count
    out[#out + 1] = redis.call('PFCOUNT', sketch)
    k = k + 2
    a = a + 3
  end
end
return out
