-- snapshot.lua: store a snapshot unless a newer one is stored.
--
-- KEYS[1] meta hash, KEYS[2] batch sorted set (scored by each batch's last
-- sequence), KEYS[3] aggregate list.
-- ARGV[1] encoded ID, ARGV[2] sequence, ARGV[3] snapshot data,
-- ARGV[4] '1' to remove the events below the sequence, else '0'.
-- ARGV[5] '1' to store only if the aggregate is live (its meta hash
-- exists) and its head is exactly the sequence (IfHead), else '0'.
--
-- Returns 1 when stored, 0 when an older snapshot was ignored or the
-- IfHead condition failed. A snapshot beyond the head moves the head to
-- it.
local meta, evkey, aggs = KEYS[1], KEYS[2], KEYS[3]
local seq = tonumber(ARGV[2])
if not seq or (ARGV[4] ~= '0' and ARGV[4] ~= '1')
    or (ARGV[5] ~= '0' and ARGV[5] ~= '1') then
  return redis.error_reply('ERR timebox snapshot: malformed arguments')
end

local state = redis.call('HMGET', meta, 'ss', 'h')
local cur, head = tonumber(state[1] or '-1'), tonumber(state[2] or '0')
if not cur or not head then
  return redis.error_reply('ERR timebox snapshot: malformed state')
end
if cur > seq then
  return 0
end
if ARGV[5] == '1' and (redis.call('EXISTS', meta) == 0 or head ~= seq) then
  return 0
end

-- Writes start here.
if seq > head then
  redis.call('HSET', meta, 'ss', ARGV[2], 'sd', ARGV[3], 'h', ARGV[2])
else
  redis.call('HSET', meta, 'ss', ARGV[2], 'sd', ARGV[3])
end
redis.call('ZADD', aggs, 0, ARGV[1])
if ARGV[4] == '1' then
  -- Batches wholly below the sequence go; 't' hides the rest of those
  -- events from readers.
  redis.call('HSET', meta, 't', ARGV[2])
  redis.call('ZREMRANGEBYSCORE', evkey, '-inf', '(' .. ARGV[2])
end
return 1
