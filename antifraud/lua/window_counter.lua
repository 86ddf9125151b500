-- Fixed-window counter: the count in this window and the seconds until the window ends.
-- KEYS[1] counter for the current window; ARGV[1] window length in seconds.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('TTL', KEYS[1])}
