-- append.lua: append a batch at the expected head, with its index change.
--
-- KEYS[1] meta hash, KEYS[2] batch sorted set, KEYS[3] the store's feed
-- stream, then, only for a first append (expected sequence 0, the one
-- append that adds the aggregate to it), the aggregate list, only when the
-- batch sets or clears the status, the status set, and only when it
-- changes labels, the label set and the label-value set.
-- ARGV[1] encoded ID, ARGV[2] expected sequence, ARGV[3] the batch's last
-- sequence and ARGV[4] the head after it (expected + n - 1 and expected +
-- n, for n events), ARGV[5] the batch: its n events framed as
-- "<length>:<record>" each ('' for an empty batch), added to the feed,
-- with the encoded ID, as one entry whose ID is "0-<commit>" (see
-- DESIGN.md, Feed); that entry is the batch's only copy, and the batch
-- sorted set gets the entry's ID as a member scored by the batch's last
-- sequence (see batches.lua, prepended to this script). Only when the
-- batch changes the index: ARGV[6] status op ('' keep, 'c' clear, 's'
-- set: an aggregate already in the status keeps the time it entered it),
-- ARGV[7] encoded new status, ARGV[8] its time part (see statusTime),
-- ARGV[9] label count m, then m pairs (encoded label, encoded value, ''
-- to remove).
--
-- The sequences are passed as the client formats them (decimal, no sign
-- or leading zeros: the form in which the head is stored), so a plain
-- append compares and stores strings: Redis would format every Lua number
-- passed to a command with snprintf, a measurable part of a one-event
-- append's server time (see BENCHMARKS.md).
--
-- Returns 1 when written (an integer, not a table: Redis probes a table
-- reply for several special fields, which cost a one-event append 7% of
-- its server instructions), or {0, head, batches holding the
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
local meta, evkey, feed = KEYS[1], KEYS[2], KEYS[3]
local eid, expected, batch = ARGV[1], ARGV[2], ARGV[5]
local nkeys, aggs = 3, false
if expected == '0' then
  nkeys, aggs = 4, KEYS[4]
end
local indexed = #ARGV > 5
if #ARGV ~= 5 and (#ARGV < 9 or #ARGV ~= 9 + 2 * (tonumber(ARGV[9]) or -1))
    or (indexed and ARGV[6] ~= '' and ARGV[6] ~= 'c' and ARGV[6] ~= 's') then
  return redis.error_reply('ERR timebox append: malformed arguments')
end

local head = redis.call('HGET', meta, 'h') or '0'
if head ~= expected then
  local h, want = tonumber(head), tonumber(expected)
  if not h then
    return redis.error_reply('ERR timebox append: malformed head')
  end
  if not want or want == h then -- not written as the head is
    return redis.error_reply('ERR timebox append: malformed arguments')
  end
  local stored, missing = batches(feed, eid,
    redis.call('ZRANGE', evkey, want, '+inf', 'BYSCORE'))
  if not stored then
    return redis.error_reply('ERR timebox append: feed entry ' .. missing .. ' missing or not this aggregate\'s')
  end
  return {0, h, stored, redis.call('HGET', meta, 't') or '0'}
end
if batch == '' then
  return 1
end
if not string.find(ARGV[3], '^%d+$') or not string.find(ARGV[4], '^%d+$') then
  return redis.error_reply('ERR timebox append: malformed arguments')
end

if not indexed then
  if #KEYS ~= nkeys then
    return redis.error_reply('ERR timebox append: malformed keys')
  end
  local ref = redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
  redis.call('ZADD', evkey, ARGV[3], ref)
  redis.call('HSET', meta, 'h', ARGV[4])
  if aggs then
    redis.call('ZADD', aggs, 0, eid)
  end
  return 1
end

-- An index change. The keys after those name the status set when the
-- status is set or cleared, then the label sets when labels change.
local op, m = ARGV[6], tonumber(ARGV[9])
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

-- Reads: the old status member, and each changed label's old value and
-- whether this aggregate is its last holder. (One HMGET for all of them
-- costs the server more than these HGETs: BenchmarkServerInstructions.)
-- An aggregate already in the status set (its member begins with the
-- encoded status and ':', which no encoded status holds) stays in it with
-- its member and time: the status is left alone.
local oldMember, newMember = false, false
if op ~= '' then
  oldMember = redis.call('HGET', meta, 'sm')
  if op == 's' then
    local prefix = ARGV[7] .. ':'
    if oldMember and string.sub(oldMember, 1, #prefix) == prefix then
      op, oldMember = '', false
    else
      newMember = prefix .. ARGV[8] .. eid
    end
  end
end
local labels = {}
for j = 1, m do
  local l, v = ARGV[8 + 2 * j], ARGV[9 + 2 * j]
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

-- Additions.
local ref = redis.call('XADD', feed, '0-*', 'i', eid, 'b', batch)
redis.call('ZADD', evkey, ARGV[3], ref)
local fields = {'h', ARGV[4]}
if newMember then
  fields[#fields + 1] = 'st'
  fields[#fields + 1] = ARGV[7]
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
if aggs then
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

-- Removals, each the last command on its key: the meta hash keeps 'h',
-- so removing fields from it never empties it.
if oldMember and oldMember ~= newMember then
  redis.call('ZREM', stkey, oldMember)
end
local gone = {}
if op == 'c' and oldMember then
  gone[1], gone[2] = 'st', 'sm'
end
for _, c in ipairs(labels) do
  if c[2] == '' then
    gone[#gone + 1] = 'l:' .. c[1]
  end
end
if #gone > 0 then
  redis.call('HDEL', meta, unpack(gone))
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
return 1
