-- Every signal of a group of concurrent scans in one call (the group is what one event-loop turn
-- queued). ARGV is a list of operations, each taking its keys from KEYS in order:
--   'w', ttl              fixed-window counter (1 key): replies count, seconds left in the window
--   'c', device_id, ttl   per-code counter and distinct-device sketch (2 keys): replies count, devices
-- The reply is the flat list of every operation's two numbers, in order.
local out = {}
local k = 1
local a = 1
while a <= #ARGV do
  if ARGV[a] == 'w' then
    local key = KEYS[k]
    local count = redis.call('INCR', key)
    if count == 1 then
      redis.call('EXPIRE', key, ARGV[a + 1])
    end
    out[#out + 1] = count
    out[#out + 1] = redis.call('TTL', key)
    k = k + 1
    a = a + 2
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
