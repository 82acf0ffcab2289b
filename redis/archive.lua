-- archive.lua: move an aggregate into the archive stream.
--
-- KEYS[1] meta hash, KEYS[2] events sorted set, KEYS[3] aggregate list,
-- KEYS[4] labels hash, KEYS[5] archive stream.
-- ARGV[1] key base, ARGV[2] encoded ID.
--
-- Adds one stream entry {id, snapshot, sequence, events} (events framed as
-- "<length>:<bytes>" each) and deletes the live keys and index entries.
-- Returns the entry's ID, or false for an unknown aggregate. All reads come
-- before the first write, the XADD.
local meta, evkey, aggs, labkey, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local base, eid = ARGV[1], ARGV[2]
if redis.call('EXISTS', meta) == 0 then
  return false
end
local state = redis.call('HMGET', meta, 'sd', 'ss', 'st', 'sm')
local events = redis.call('ZRANGE', evkey, 0, -1)
local labels = redis.call('HGETALL', labkey)

local framed = {}
for i, e in ipairs(events) do
  framed[i] = tostring(#e) .. ':' .. e
end

-- Writes start here.
local entry = redis.call('XADD', stream, '*',
  'id', eid, 'snapshot', state[1] or '', 'sequence', state[2] or '0',
  'events', table.concat(framed))

if state[3] then
  redis.call('ZREM', base .. 's:' .. state[3], state[4])
end
for i = 1, #labels, 2 do
  local l, v = labels[i], labels[i + 1]
  local k = base .. 'la:' .. l .. ':' .. v
  redis.call('SREM', k, eid)
  if redis.call('SCARD', k) == 0 then
    redis.call('SREM', base .. 'lv:' .. l, v)
  end
end
redis.call('DEL', meta, evkey, labkey)
redis.call('ZREM', aggs, eid)
return entry
