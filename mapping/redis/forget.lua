-- Erase one key's mapping in every namespace and release its claim.
-- ARGV[1] escaped domain, ARGV[2] hex key. Returns how many mappings were removed.
-- Namespaces whose domain set is gone have expired: they leave the registry here.
local n = 0
for _, ns in ipairs(redis.call('SMEMBERS', 'us:m:namespaces')) do
  local base = 'us:m:' .. ns .. ':'
  if redis.call('EXISTS', base .. 'domains') == 0 then
    redis.call('SREM', 'us:m:namespaces', ns)
  else
    local pre = base .. ARGV[1] .. ':'
    local fwd = pre .. 'f:' .. ARGV[2]
    local v = redis.call('GET', fwd)
    if v then
      redis.call('DEL', fwd)
      local rev = pre .. 'r:' .. v
      if redis.call('GET', rev) == ARGV[2] then
        redis.call('DEL', rev)
      end
      n = n + 1
    end
  end
end
return n
