-- archive.lua: move an aggregate into the archive stream.
--
-- KEYS[1] meta hash, KEYS[2] batch sorted set, KEYS[3] aggregate list,
-- KEYS[4] archive stream, KEYS[5] status set, KEYS[6] label set,
-- KEYS[7] label-value set, KEYS[8] the feed stream (read only: it keeps
-- the batches; see batches.lua, prepended to this script).
-- ARGV[1] encoded ID.
--
-- Adds one stream entry {id, snapshot, sequence, events, from}: the
-- batches concatenated (each is its events framed as "<length>:<bytes>"),
-- and the trim floor below which the first batches' events were trimmed.
-- Then deletes the live keys and index entries.
-- Returns the entry's ID, or false for an unknown aggregate. As in
-- append.lua, every key is in KEYS, all reads come before the first write
-- (the XADD), and each removal that can empty a key is the last command on
-- that key, so a slot migrating mid-flight can only stop the script before
-- it writes.
local meta, evkey, aggs, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local stkey, labkey, lvkey = KEYS[5], KEYS[6], KEYS[7]
local eid = ARGV[1]
if redis.call('EXISTS', meta) == 0 then
  return false
end
local state = redis.call('HGETALL', meta)
local fields = {}
local labels = {}
for i = 1, #state, 2 do
  local f, v = state[i], state[i + 1]
  fields[f] = v
  if f:sub(1, 2) == 'l:' then
    local l = f:sub(3)
    local p = l .. ':' .. v .. ':'
    local last = #redis.call('ZRANGE', labkey, '[' .. p, '[' .. p .. '\255',
      'BYLEX', 'LIMIT', 0, 2) < 2
    labels[#labels + 1] = {l, v, last}
  end
end
local members = redis.call('ZRANGE', evkey, 0, -1)
local stored, missing = batches(KEYS[8], eid, members)
if not stored then
  return redis.error_reply('ERR timebox archive: feed entry ' .. missing .. ' missing or not this aggregate\'s')
end

-- Writes start here.
local entry = redis.call('XADD', stream, '*',
  'id', eid, 'snapshot', fields['sd'] or '', 'sequence', fields['ss'] or '0',
  'events', table.concat(stored), 'from', fields['t'] or '0')

if fields['sm'] then
  redis.call('ZREM', stkey, fields['sm'])
end
for _, c in ipairs(labels) do
  redis.call('ZREM', labkey, c[1] .. ':' .. c[2] .. ':' .. eid)
end
for _, c in ipairs(labels) do
  if c[3] then
    redis.call('ZREM', lvkey, c[1] .. ':' .. c[2])
  end
end
redis.call('ZREM', aggs, eid)
redis.call('DEL', meta)
if #members > 0 then
  redis.call('DEL', evkey)
end
return entry
