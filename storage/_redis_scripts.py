"""The Lua scripts of RedisStore: each checks and writes the keys of one context atomically.

Every script touches only the keys of one context, which share a hash tag and so one cluster
slot; they are passed in KEYS, never built inside a script. docs/storage.md ("Redis") states
each script's keys, arguments, effect and reply.
"""

from __future__ import annotations

__all__ = [
    "COMPARE_AND_SET",
    "CREATE",
    "CREATE_RECOVERY_POINT",
    "DELETE",
    "DELETE_RECOVERY_POINT",
    "READ_HEAD",
]

# Versions are compared as canonical decimal strings (str(int)), never as Lua numbers, which
# are doubles and would lose precision above 2**53.
_GREATER = """
local function greater(a, b)
  local a_neg, b_neg = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if a_neg ~= b_neg then return b_neg end
  if #a ~= #b then
    if a_neg then return #a < #b end
    return #a > #b
  end
  if a_neg then return a < b end
  return a > b
end
"""

# Every script makes all its checks before its first write, and writes in an order that
# leaves a readable context should the server fail it half way (Redis does not roll back a
# script that errors after writing, e.g. on out-of-memory).

CREATE = """
-- KEYS: meta, heads, points, point_blobs   ARGV: version, blob
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'version', ARGV[1])
return 1
"""

READ_HEAD = """
-- KEYS: meta, heads
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return false end
return {version, redis.call('HGET', KEYS[2], version)}
"""

COMPARE_AND_SET = (
    _GREATER
    + """
-- KEYS: meta, heads   ARGV: expected, version, blob, retain_heads
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return {'missing'} end
if head ~= ARGV[1] then return {'conflict', head} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'version', ARGV[2])
local versions = redis.call('HKEYS', KEYS[2])
local retain = tonumber(ARGV[4])
if #versions > retain then
  table.sort(versions, greater)
  for i = retain + 1, #versions do redis.call('HDEL', KEYS[2], versions[i]) end
end
return {'ok'}
"""
)

DELETE = """
-- KEYS: meta, heads, points, point_blobs
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
"""

CREATE_RECOVERY_POINT = """
-- KEYS: meta, points, point_blobs   ARGV: point_id, info, blob
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

DELETE_RECOVERY_POINT = """
-- KEYS: points, point_blobs   ARGV: point_id
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""
