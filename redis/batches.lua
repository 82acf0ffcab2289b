-- batches.lua: prepended to append.lua, load.lua and archive.lua.
--
-- batches(feed, eid, members) returns the batches of the aggregate eid
-- that members of its batch sorted set stand for, in order. A member is
-- either the ID of the feed entry that holds the batch ("0-<commit>": the
-- feed entry is the only copy), whose 'b' field it reads with XRANGE, or
-- the batch itself (the framed records "<length>:<record>..." that
-- versions before this layout stored there, still read): no framed batch
-- looks like an entry ID. It only reads. When an entry is missing, or is
-- another aggregate's (someone trimmed or deleted the feed, whose IDs then
-- start again), it returns nil and the member.
local function batches(feed, eid, members)
  local res = {}
  for i, m in ipairs(members) do
    if string.find(m, '^%d+%-%d+$') then
      local e = redis.call('XRANGE', feed, m, m)[1]
      local f, id, b = e and e[2] or {}, nil, nil
      for j = 1, #f - 1, 2 do
        if f[j] == 'i' then
          id = f[j + 1]
        elseif f[j] == 'b' then
          b = f[j + 1]
        end
      end
      if id ~= eid or not b then
        return nil, m
      end
      res[i] = b
    else
      res[i] = m
    end
  end
  return res
end

