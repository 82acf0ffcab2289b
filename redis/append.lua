-- append.lua: append a batch at the expected head, with its index change.
--
-- KEYS[1] meta hash, KEYS[2] events sorted set, KEYS[3] aggregate list,
-- KEYS[4] labels hash of the aggregate.
-- ARGV[1] key base, ARGV[2] encoded ID, ARGV[3] expected sequence,
-- ARGV[4] event count n, ARGV[5] status op ('' keep, 'c' clear, 's' set),
-- ARGV[6] encoded status, ARGV[7] status score, ARGV[8] status member
-- time, ARGV[9] label count m, then m pairs (encoded label, encoded value,
-- '' to remove), then n encoded events.
--
-- Returns {1, new head} when written, or {0, head, events from the
-- expected sequence on} on a conflict, when nothing is written. Every
-- check and read comes before the first write, because a Lua error does
-- not undo earlier writes.
local meta, evkey, aggs, labkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base, eid = ARGV[1], ARGV[2]
local expected = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local op = ARGV[5]
local m = tonumber(ARGV[9])
if not expected or not n or not m or #ARGV ~= 9 + 2 * m + n
    or (op ~= '' and op ~= 'c' and op ~= 's') then
  return redis.error_reply('ERR timebox append: malformed arguments')
end

local head = tonumber(redis.call('HGET', meta, 'h') or '0')
if not head then
  return redis.error_reply('ERR timebox append: malformed head')
end
if head ~= expected then
  return {0, head, redis.call('ZRANGE', evkey, expected, '+inf', 'BYSCORE')}
end
if n == 0 then
  return {1, head}
end

local oldStatus, oldMember = false, false
if op ~= '' then
  local s = redis.call('HMGET', meta, 'st', 'sm')
  oldStatus, oldMember = s[1], s[2]
end
local oldLabels = {}
for j = 1, m do
  oldLabels[j] = redis.call('HGET', labkey, ARGV[8 + 2 * j])
end

-- Writes start here. Sequences are below 2^53, so Lua numbers hold them
-- exactly and redis.call passes them as integers.
local first = 9 + 2 * m
if n == 1 then
  redis.call('ZADD', evkey, expected, ARGV[first + 1])
else
  local args = {}
  for i = 1, n do
    args[#args + 1] = expected + i - 1
    args[#args + 1] = ARGV[first + i]
    if #args >= 1000 then
      redis.call('ZADD', evkey, unpack(args))
      args = {}
    end
  end
  if #args > 0 then
    redis.call('ZADD', evkey, unpack(args))
  end
end
redis.call('HSET', meta, 'h', head + n)
if head == 0 then
  redis.call('ZADD', aggs, 0, eid)
end

if op ~= '' then
  if oldStatus then
    redis.call('ZREM', base .. 's:' .. oldStatus, oldMember)
  end
  if op == 's' then
    local member = ARGV[8] .. eid
    redis.call('ZADD', base .. 's:' .. ARGV[6], ARGV[7], member)
    redis.call('HSET', meta, 'st', ARGV[6], 'sm', member)
  else
    redis.call('HDEL', meta, 'st', 'sm')
  end
end

for j = 1, m do
  local l, v, old = ARGV[8 + 2 * j], ARGV[9 + 2 * j], oldLabels[j]
  if old ~= v then
    if old then
      local k = base .. 'la:' .. l .. ':' .. old
      redis.call('SREM', k, eid)
      if redis.call('SCARD', k) == 0 then
        redis.call('SREM', base .. 'lv:' .. l, old)
      end
    end
    if v == '' then
      redis.call('HDEL', labkey, l)
    else
      redis.call('HSET', labkey, l, v)
      redis.call('SADD', base .. 'la:' .. l .. ':' .. v, eid)
      redis.call('SADD', base .. 'lv:' .. l, v)
    end
  end
end
return {1, head + n}
