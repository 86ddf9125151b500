-- Per-code scan signals, one round trip: scan counter and distinct-device sketch (HyperLogLog).
-- Both keys carry the code's hash tag, so the script also runs on Redis Cluster.
-- KEYS[1] counter, KEYS[2] device sketch; ARGV[1] device id, ARGV[2] ttl in seconds.
local count = redis.call('INCR', KEYS[1])
redis.call('PFADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {count, redis.call('PFCOUNT', KEYS[2])}
