-- load.lua: the snapshot, the trim floor and the stored batches, read
-- together in one consistent step.
--
-- KEYS[1] meta hash, KEYS[2] batch sorted set, KEYS[3] the feed stream.
-- ARGV[1] the sequence to read from, or '' for the snapshot's, ARGV[2]
-- the encoded ID.
-- Returns {snapshot data ('' unless ARGV[1] is ''), the sequence read
-- from, trim floor, the batches holding the events from that sequence on
-- (see batches.lua, prepended to this script)}.
local state = redis.call('HMGET', KEYS[1], 'sd', 'ss', 't')
local from, data = ARGV[1], ''
if from == '' then
  from, data = state[2] or '0', state[1] or ''
end
local stored, missing = batches(KEYS[3], ARGV[2],
  redis.call('ZRANGE', KEYS[2], from, '+inf', 'BYSCORE'))
if not stored then
  return redis.error_reply('ERR timebox load: feed entry ' .. missing .. ' missing or not this aggregate\'s')
end
return {data, from, state[3] or '0', stored}
