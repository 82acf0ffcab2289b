-- load.lua: the snapshot and the events from its sequence on, read
-- together.
--
-- KEYS[1] meta hash, KEYS[2] events sorted set.
-- Returns {snapshot data or '', snapshot sequence, events}.
local state = redis.call('HMGET', KEYS[1], 'sd', 'ss')
local from = state[2] or '0'
return {state[1] or '', from, redis.call('ZRANGE', KEYS[2], from, '+inf', 'BYSCORE')}
