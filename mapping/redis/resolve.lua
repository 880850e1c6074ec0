-- Get-or-create for a chunk of mapping requests, atomically (Redis runs one script
-- at a time). ARGV, as built by resolveArgs in store.go:
--   [1]  P, the number of (namespace, domain) spaces in the chunk
--   then P triples: escaped namespace, escaped domain, expiry (Unix ms, 0 = never)
--   then per request: space index (1-based), hex key, candidate count C, C candidates
-- Returns one entry per request: the replacement, or false (nil) when every
-- candidate was claimed by another key.
local nargs = #ARGV
local np = tonumber(ARGV[1])
local pre, exp = {}, {}
local i = 2
for p = 1, np do
  local ns, dom, e = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  pre[p] = 'us:m:' .. ns .. ':' .. dom .. ':'
  exp[p] = e
  -- Registries for Forget: which namespaces exist, and their domains. The domain
  -- set expires with the namespace, which tells Forget the namespace is gone.
  local domains = 'us:m:' .. ns .. ':domains'
  redis.call('SADD', 'us:m:namespaces', ns)
  redis.call('SADD', domains, dom)
  if e > 0 and redis.call('PEXPIRETIME', domains) < e then
    redis.call('PEXPIREAT', domains, e)
  end
end

local out = {}
local n = 0
while i <= nargs do
  local p, k, nc = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local fwd = pre[p] .. 'f:' .. k
  local v = redis.call('GET', fwd)
  if not v then
    v = false
    for c = i, i + nc - 1 do
      local cand = ARGV[c]
      local rev = pre[p] .. 'r:' .. cand
      local claimed
      if exp[p] > 0 then
        claimed = redis.call('SET', rev, k, 'NX', 'PXAT', exp[p])
      else
        claimed = redis.call('SET', rev, k, 'NX')
      end
      if claimed then
        if exp[p] > 0 then
          redis.call('SET', fwd, cand, 'PXAT', exp[p])
        else
          redis.call('SET', fwd, cand)
        end
        v = cand
        break
      end
    end
  end
  n = n + 1
  out[n] = v
  i = i + nc
end
return out
