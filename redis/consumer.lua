-- consumer.lua: one atomic step on a durable consumer's partitions.
--
-- KEYS[1] the consumer's hash, KEYS[2] the store's consumer set, KEYS[3]
-- the store's epoch counter.
-- ARGV[1] the operation, ARGV[2] the encoded name (its member in the set),
-- then, by operation:
--   claim   partition, partitions, owner, ttl (ms)
--           -> {1, checkpoint, epoch}, {0} when another owner's lease is
--              live, or {2, partitions} when the consumer has another count
--   commit  partition, partitions, owner, ttl (ms), position
--           -> 1, or 0 when owner does not hold the lease
--   release partition, owner -> 1
--   reset   position -> 1, or 0 when there is no such consumer
--   delete  -> 1, or 0 when there is no such consumer
--
-- The hash holds 'n' the partition count, 'e' the consumer's epoch (see
-- timebox.Claim: the counter's next value, taken when the consumer is
-- created and on every reset; absent, 0, on a consumer made before
-- epochs, and the counter starts at 1) and, per partition p, 'c<p>' its
-- checkpoint ("commit.offset", absent for the zero Position), 'o<p>' its
-- owner and 'x<p>' when the lease expires, in milliseconds of the
-- server's clock (TIME). As in append.lua, every check comes before the
-- first write, and the only removals (HDEL of lease fields, never 'n';
-- ZREM and DEL on delete) are the last commands on their keys.
local h, set, epochs = KEYS[1], KEYS[2], KEYS[3]
local op, name = ARGV[1], ARGV[2]

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

if op == 'claim' then
  local p, n, owner = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local ttl = tonumber(ARGV[6])
  local st = redis.call('HMGET', h, 'n', 'o' .. p, 'x' .. p, 'c' .. p, 'e')
  local t = now()
  local epoch = tonumber(st[5] or '0')
  if st[1] then
    if tonumber(st[1]) ~= n then
      return {2, tonumber(st[1])}
    end
    if st[2] and st[2] ~= owner and tonumber(st[3] or '0') > t then
      return {0}
    end
  else
    redis.call('ZADD', set, 0, name)
    epoch = redis.call('INCR', epochs)
    redis.call('HSET', h, 'e', epoch)
  end
  redis.call('HSET', h, 'n', n, 'o' .. p, owner, 'x' .. p, t + ttl)
  return {1, st[4] or '0.0', epoch}
elseif op == 'commit' then
  local p, n, owner = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local ttl, pos = tonumber(ARGV[6]), ARGV[7]
  local st = redis.call('HMGET', h, 'n', 'o' .. p)
  if not st[1] or tonumber(st[1]) ~= n or st[2] ~= owner then
    return 0
  end
  redis.call('HSET', h, 'c' .. p, pos, 'x' .. p, now() + ttl)
  return 1
elseif op == 'release' then
  local p, owner = ARGV[3], ARGV[4]
  if redis.call('HGET', h, 'o' .. p) == owner then
    redis.call('HDEL', h, 'o' .. p, 'x' .. p)
  end
  return 1
elseif op == 'reset' then
  local n = tonumber(redis.call('HGET', h, 'n') or '')
  if not n then
    return 0
  end
  local cps, del = {}, {}
  for p = 0, n - 1 do
    cps[#cps + 1] = 'c' .. p
    cps[#cps + 1] = ARGV[3]
    del[#del + 1] = 'o' .. p
    del[#del + 1] = 'x' .. p
  end
  cps[#cps + 1] = 'e'
  cps[#cps + 1] = redis.call('INCR', epochs)
  redis.call('HSET', h, unpack(cps))
  redis.call('HDEL', h, unpack(del))
  return 1
elseif op == 'delete' then
  if redis.call('EXISTS', h) == 0 then
    return 0
  end
  redis.call('ZREM', set, name)
  redis.call('DEL', h)
  return 1
end
return redis.error_reply('ERR timebox consumer: unknown operation')
