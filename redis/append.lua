-- append.lua: append a batch at the expected head, with its index change.
--
-- KEYS[1] meta hash, KEYS[2] batch sorted set, KEYS[3] aggregate list,
-- KEYS[4] the store's feed stream, then, only when the batch changes the status, the status set, and only
-- when it changes labels, the label set and the label-value set.
-- ARGV[1] encoded ID, ARGV[2] expected sequence, ARGV[3] event count n,
-- ARGV[4] status op ('' keep, 'c' clear, 's' set), ARGV[5] encoded new
-- status, ARGV[6] its time part (see statusTime), ARGV[7] label count m,
-- then m pairs (encoded label, encoded value, '' to remove), then the
-- batch: its n events framed as "<length>:<record>" each, added to the
-- feed, with the encoded ID, as one entry whose ID is "0-<commit>" (see
-- DESIGN.md, Feed); that entry is the batch's only copy, and the batch
-- sorted set gets the entry's ID as a member scored by the batch's last
-- sequence (see batches.lua, prepended to this script).
--
-- Returns {1, new head} when written, or {0, head, batches holding the
-- events from the expected sequence on, trim floor} on a conflict, when
-- nothing is written; the client drops the events below the expected
-- sequence and the floor.
--
-- Cluster safety: a Lua error does not undo earlier writes, and while a
-- slot migrates Redis fails any command on a key the node does not hold.
-- So every key the script may touch is in KEYS (Redis refuses to start the
-- script unless the node holds them all), every check and read comes
-- before the first write, all additions come before all removals, and a
-- removal that can empty a key is the last command on that key. No key is
-- ever missing when the script touches it.
local meta, evkey, aggs, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local eid = ARGV[1]
local expected = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local op = ARGV[4]
local m = tonumber(ARGV[7])
if not expected or not n or not m or #ARGV ~= 8 + 2 * m
    or (op ~= '' and op ~= 'c' and op ~= 's') then
  return redis.error_reply('ERR timebox append: malformed arguments')
end
local nkeys = 4
local stkey, labkey, lvkey
if op ~= '' then
  nkeys = nkeys + 1
  stkey = KEYS[nkeys]
end
if m > 0 then
  labkey, lvkey = KEYS[nkeys + 1], KEYS[nkeys + 2]
  nkeys = nkeys + 2
end
if #KEYS ~= nkeys then
  return redis.error_reply('ERR timebox append: malformed keys')
end

local head = tonumber(redis.call('HGET', meta, 'h') or '0')
if not head then
  return redis.error_reply('ERR timebox append: malformed head')
end
if head ~= expected then
  local stored, missing = batches(feed, eid,
    redis.call('ZRANGE', evkey, expected, '+inf', 'BYSCORE'))
  if not stored then
    return redis.error_reply('ERR timebox append: feed entry ' .. missing .. ' missing or not this aggregate\'s')
  end
  return {0, head, stored, redis.call('HGET', meta, 't') or '0'}
end
if n == 0 then
  return {1, head}
end

-- Reads: the old status member, and each changed label's old value and
-- whether this aggregate is its last holder.
local oldMember, newMember = false, false
if op ~= '' then
  oldMember = redis.call('HGET', meta, 'sm')
  if op == 's' then
    newMember = ARGV[5] .. ':' .. ARGV[6] .. eid
  end
end
local labels = {}
for j = 1, m do
  local l, v = ARGV[6 + 2 * j], ARGV[7 + 2 * j]
  local old = redis.call('HGET', meta, 'l:' .. l)
  if old ~= v and (old or v ~= '') then
    local last = false
    if old then
      local p = l .. ':' .. old .. ':'
      last = #redis.call('ZRANGE', labkey, '[' .. p, '[' .. p .. '\255',
        'BYLEX', 'LIMIT', 0, 2) < 2
    end
    labels[#labels + 1] = {l, v, old, last}
  end
end

-- Additions. Sequences are below 2^53, so Lua numbers hold them exactly
-- and redis.call passes them as integers. The feed entry's ID is the next
-- sequence number within millisecond 0.
local ref = redis.call('XADD', feed, '0-*', 'i', eid, 'b', ARGV[8 + 2 * m])
redis.call('ZADD', evkey, head + n - 1, ref)
local fields = {'h', head + n}
if newMember then
  fields[#fields + 1] = 'st'
  fields[#fields + 1] = ARGV[5]
  fields[#fields + 1] = 'sm'
  fields[#fields + 1] = newMember
end
for _, c in ipairs(labels) do
  if c[2] ~= '' then
    fields[#fields + 1] = 'l:' .. c[1]
    fields[#fields + 1] = c[2]
  end
end
redis.call('HSET', meta, unpack(fields))
if head == 0 then
  redis.call('ZADD', aggs, 0, eid)
end
if newMember then
  redis.call('ZADD', stkey, 0, newMember)
end
for _, c in ipairs(labels) do
  if c[2] ~= '' then
    redis.call('ZADD', labkey, 0, c[1] .. ':' .. c[2] .. ':' .. eid)
    redis.call('ZADD', lvkey, 0, c[1] .. ':' .. c[2])
  end
end

-- Removals, each the last command on its key.
if oldMember and oldMember ~= newMember then
  redis.call('ZREM', stkey, oldMember)
end
if op == 'c' and oldMember then
  redis.call('HDEL', meta, 'st', 'sm')
end
for _, c in ipairs(labels) do
  if c[2] == '' then
    redis.call('HDEL', meta, 'l:' .. c[1])
  end
end
for _, c in ipairs(labels) do
  if c[3] then
    redis.call('ZREM', labkey, c[1] .. ':' .. c[3] .. ':' .. eid)
  end
end
for _, c in ipairs(labels) do
  if c[4] then
    redis.call('ZREM', lvkey, c[1] .. ':' .. c[3])
  end
end
return {1, head + n}
