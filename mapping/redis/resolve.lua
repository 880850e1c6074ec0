-- Get-or-create for a chunk of mapping requests, atomically (Redis runs one script
-- at a time). ARGV, as built by resolveArgs in store.go:
--   [1]  P, the number of (namespace, domain) spaces in the chunk
--   then P triples: escaped namespace, escaped domain, expiry (Unix ms, 0 = never)
--   then per request: space index (1-based), hex key, candidate count C, C candidates
-- Returns one entry per request: the replacement, wrapped in a one-element array
-- when the mapping existed before this call (Resolution.Existed), or false (nil)
-- when every candidate was claimed by another key.
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

-- Per request, the forward key is written first with the first candidate, NX and
-- GET: one command that reads an existing mapping or, for a new value, stores the
-- likely answer; then the claims. A new value whose first candidate is free (the
-- common case) costs two commands instead of a GET and two SETs. Nothing else
-- runs inside the script, so no one sees the forward key before its claim.
local out = {}
local n = 0
while i <= nargs do
  local p, k, nc = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local fwd = pre[p] .. 'f:' .. k
  local e = exp[p]
  local v
  if nc == 0 then
    v = redis.call('GET', fwd)
  elseif e > 0 then
    v = redis.call('SET', fwd, ARGV[i], 'NX', 'GET', 'PXAT', e)
  else
    v = redis.call('SET', fwd, ARGV[i], 'NX', 'GET')
  end
  local existed = v and true or false
  if not v and nc > 0 then
    v = false
    for c = i, i + nc - 1 do
      local cand = ARGV[c]
      local claimed
      if e > 0 then
        claimed = redis.call('SET', pre[p] .. 'r:' .. cand, k, 'NX', 'PXAT', e)
      else
        claimed = redis.call('SET', pre[p] .. 'r:' .. cand, k, 'NX')
      end
      if claimed then
        if c > i then -- the forward key holds the first candidate
          if e > 0 then
            redis.call('SET', fwd, cand, 'PXAT', e)
          else
            redis.call('SET', fwd, cand)
          end
        end
        v = cand
        break
      end
    end
    if not v then
      redis.call('DEL', fwd)
    end
  end
  n = n + 1
  if existed then
    out[n] = {v}
  else
    out[n] = v
  end
  i = i + nc
end
return out
