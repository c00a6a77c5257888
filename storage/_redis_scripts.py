"""The Lua scripts of RedisStore: each checks and writes the keys of one context atomically.

Every script touches only the keys of one context, which share a hash tag and so one cluster
slot (or, UPGRADE_SCHEMA, the one key `<prefix>:schema`); they are passed in KEYS, never built
inside a script. The scripts that move a head (CREATE, COMPARE_AND_SET, APPEND, IMPORT_CONTEXT,
DELETE) also publish `<name> <version>` (`<name> -` for a delete) on the channel passed in
ARGV, last and only when they wrote. A channel with a hash tag is the context's shard channel
`<prefix>:{<name>}:changes`, in the slot of its keys, and is published with SPUBLISH (a
Redis Cluster of Redis 7 or later: the message stays in that slot's shard); any other with
PUBLISH (one server: `<prefix>:changes`, whose prefix cannot hold a brace); an empty one not
at all (a cluster without sharded pub/sub, where a PUBLISH would reach every node: its
watchers read head versions instead). They publish
with `redis.pcall`, so that a publish that fails (a user whose ACL denies it) cannot fail a
script that has already written: the write stands and is reported as done, and only the
notification is lost (other processes then see the write at their next read or conflict).
docs/storage.md ("Redis") states each script's keys, arguments, effect and reply.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE_LEASE",
    "APPEND",
    "APPEND_CHAIN",
    "COMPARE_AND_SET",
    "CREATE",
    "CREATE_RECOVERY_POINT",
    "DELETE",
    "DELETE_RECOVERY_POINT",
    "EXPORT_CONTEXT",
    "IMPORT_CONTEXT",
    "READ_CHANGES",
    "READ_HEAD",
    "READ_JOURNAL",
    "READ_LATEST",
    "READ_LEASE",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "STAMP_SCHEMA",
    "UPGRADE_SCHEMA",
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

# A context's lease is the hash `<prefix>:{name}:lease` (owner, epoch, expires_at,
# wanted_by), in the context's slot, so that the write scripts check it in the same atomic
# step. Time is the server's (TIME, in microseconds), never the client's. A number written to
# a key or returned goes through string.format('%d'): Lua's tostring, which redis.call uses
# for numbers, keeps 14 digits and a time in microseconds has 16.
_LEASE = """
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function us(n) return string.format('%d', n) end
-- The lease in `key`: owner (false: none), epoch (0: never taken), microseconds until it
-- ends from `now` (<= 0: ended), wanted_by (false: none).
local function lease_record(key, now)
  local l = redis.call('HMGET', key, 'owner', 'epoch', 'expires_at', 'wanted_by')
  return l[1], tonumber(l[2] or '0'), tonumber(l[3] or '0') - now, l[4]
end
-- false if a write fenced with `epoch` ('' for an unfenced write) may go in, else the reply
-- that refuses it: {'lease', current epoch}.
local function fenced_out(key, epoch)
  if epoch == '' then return false end
  local owner, current, left = lease_record(key, server_now())
  if owner and us(current) == epoch and left > 0 then return false end
  return {'lease', us(current)}
end
"""

ACQUIRE_LEASE = (
    _LEASE
    + """
-- KEYS: lease   ARGV: owner, ttl (microseconds)
local now = server_now()
local owner, epoch, left, wanted = lease_record(KEYS[1], now)
if owner and left > 0 and owner ~= ARGV[1] then
  -- Refused; the first asker is noted, in the same step, so that the holder hands over.
  if not wanted then redis.call('HSET', KEYS[1], 'wanted_by', ARGV[1]) end
  return {'taken', owner, us(left)}
end
local expires = us(now + tonumber(ARGV[2]))
if owner and left > 0 then
  redis.call('HSET', KEYS[1], 'expires_at', expires)
  return {'ok', us(epoch), wanted}
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', us(epoch + 1), 'expires_at', expires)
redis.call('HDEL', KEYS[1], 'wanted_by')
return {'ok', us(epoch + 1), false}
"""
)

RENEW_LEASE = (
    _LEASE
    + """
-- KEYS: lease   ARGV: owner, epoch, ttl (microseconds)
local now = server_now()
local owner, epoch, left, wanted = lease_record(KEYS[1], now)
if owner == ARGV[1] and us(epoch) == ARGV[2] and left > 0 then
  left = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'expires_at', us(now + left))
end
return {owner, us(epoch), us(left), wanted}
"""
)

READ_LEASE = (
    _LEASE
    + """
-- KEYS: lease
local owner, epoch, left, wanted = lease_record(KEYS[1], server_now())
return {owner, us(epoch), us(left), wanted}
"""
)

RELEASE_LEASE = (
    _LEASE
    + """
-- KEYS: lease   ARGV: owner, epoch
-- The epoch stays: the next taker gets epoch + 1.
local now = server_now()
local owner, epoch, left = lease_record(KEYS[1], now)
if owner ~= ARGV[1] or us(epoch) ~= ARGV[2] or left <= 0 then return 0 end
redis.call('HDEL', KEYS[1], 'owner', 'wanted_by')
redis.call('HSET', KEYS[1], 'expires_at', us(now))
return 1
"""
)

# How the scripts that move a head announce it (see the module docstring).
_PUBLISH = """
local function publish(channel, message)
  if channel == '' then return end
  if string.find(channel, '{', 1, true) then
    redis.pcall('SPUBLISH', channel, message)
  else
    redis.pcall('PUBLISH', channel, message)
  end
end
"""

# Every script makes all its checks, and the reads its writes depend on, before its first
# write (so a key of the wrong type fails it with nothing written), and writes in an order
# that leaves a readable context should the server fail it half way (Redis does not roll back
# a script that errors after writing, e.g. on out-of-memory). A snapshot or journal entry is
# written before the head version that makes it visible, readers take nothing above the head,
# and a write that moves the head drops what such a failure left where the head now reaches.

CREATE = (
    _PUBLISH
    + """
-- KEYS: meta, heads, points, point_blobs, journal   ARGV: version, blob, channel, name
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'version', ARGV[1])
publish(ARGV[3], ARGV[4] .. ' ' .. ARGV[1])
return 1
"""
)

# The reads READ_HEAD, READ_JOURNAL and READ_LATEST share: the newest snapshot at or below
# the head, and the journal entries in (after, head], appended to a flat reply.
_READS = """
local function newest_at_or_below(heads, head)
  local newest = false
  for _, version in ipairs(redis.call('HKEYS', heads)) do
    if not greater(version, head) and (not newest or greater(version, newest)) then
      newest = version
    end
  end
  return newest
end
local function append_entries(reply, journal, after, head)
  for _, version in ipairs(redis.call('HKEYS', journal)) do
    if greater(version, after) and not greater(version, head) then
      reply[#reply + 1] = version
      reply[#reply + 1] = redis.call('HGET', journal, version)
    end
  end
  return reply
end
"""

READ_HEAD = (
    _GREATER
    + _READS
    + """
-- KEYS: meta, heads
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return false end
local newest = newest_at_or_below(KEYS[2], head)
if not newest then return {head, false} end
return {newest, redis.call('HGET', KEYS[2], newest)}
"""
)

COMPARE_AND_SET = (
    _GREATER
    + _LEASE
    + _PUBLISH
    + """
-- KEYS: meta, heads, journal, lease
-- ARGV: expected, version, blob, retain_heads, channel, name, fence ('' or the epoch)
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return {'missing'} end
local lost = fenced_out(KEYS[4], ARGV[7])
if lost then return lost end
if head ~= ARGV[1] then return {'conflict', head} end
-- Snapshots and entries above the head were left by writes the server failed half way: drop
-- them. Of the rest keep the newest retain_heads snapshots and the entries they need: above
-- the oldest of them, up to the old head.
local versions, dropped = {ARGV[2]}, {}
for _, version in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not greater(version, head) then
    versions[#versions + 1] = version
  elseif version ~= ARGV[2] then
    dropped[#dropped + 1] = version
  end
end
table.sort(versions, greater)
local retain = tonumber(ARGV[4])
for i = retain + 1, #versions do dropped[#dropped + 1] = versions[i] end
local oldest = versions[math.min(retain, #versions)]
local entries = redis.call('HKEYS', KEYS[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'version', ARGV[2])
for _, version in ipairs(dropped) do redis.call('HDEL', KEYS[2], version) end
for _, entry in ipairs(entries) do
  if not greater(entry, oldest) or greater(entry, head) then
    redis.call('HDEL', KEYS[3], entry)
  end
end
publish(ARGV[5], ARGV[6] .. ' ' .. ARGV[2])
return {'ok'}
"""
)

APPEND = (
    _LEASE
    + _PUBLISH
    + """
-- KEYS: meta, heads, journal, lease
-- ARGV: expected, version, blob, channel, name, fence ('' or the epoch)
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return {'missing'} end
local lost = fenced_out(KEYS[4], ARGV[6])
if lost then return lost end
if head ~= ARGV[1] then return {'conflict', head} end
local stray = redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
-- A snapshot at this version was left by a compare-and-set the server failed half way.
if stray then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('HSET', KEYS[1], 'version', ARGV[2])
publish(ARGV[4], ARGV[5] .. ' ' .. ARGV[2])
return {'ok'}
"""
)

# A context's journal entries that chain (v+1, v+2, ... after `expected`) in one atomic step:
# what a tracker's pipelined batch of updates becomes, one round trip (and, with
# `appendfsync always`, one fsync) instead of one per update. Published once, with the last
# version: a watcher counts messages and reads the heads, it needs no message per version.
APPEND_CHAIN = (
    _LEASE
    + _PUBLISH
    + """
-- KEYS: meta, heads, journal, lease
-- ARGV: expected, channel, name, fence ('' or the epoch), then version, blob, version, blob...
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return {'missing'} end
local lost = fenced_out(KEYS[4], ARGV[4])
if lost then return lost end
if head ~= ARGV[1] then return {'conflict', head} end
-- Snapshots at these versions were left by compare-and-sets the server failed half way.
local stray = {}
for i = 5, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then stray[#stray + 1] = ARGV[i] end
end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
for _, version in ipairs(stray) do redis.call('HDEL', KEYS[2], version) end
local last = ARGV[#ARGV - 1]
redis.call('HSET', KEYS[1], 'version', last)
publish(ARGV[2], ARGV[3] .. ' ' .. last)
return {'ok'}
"""
)

READ_JOURNAL = (
    _GREATER
    + _READS
    + """
-- KEYS: meta, journal   ARGV: after
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return {} end
return append_entries({}, KEYS[2], ARGV[1], head)
"""
)

READ_CHANGES = (
    _GREATER
    + _READS
    + """
-- KEYS: meta, heads, journal   ARGV: after
-- What a catch-up reads, as of one moment: the head version, the count of journal entries,
-- then the journal entries and the snapshots in (after, head], as version, blob pairs.
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return false end
local reply = append_entries({head, 0}, KEYS[3], ARGV[1], head)
reply[2] = (#reply - 2) / 2
for _, version in ipairs(redis.call('HKEYS', KEYS[2])) do
  if greater(version, ARGV[1]) and not greater(version, head) then
    reply[#reply + 1] = version
    reply[#reply + 1] = redis.call('HGET', KEYS[2], version)
  end
end
return reply
"""
)

READ_LATEST = (
    _GREATER
    + _READS
    + """
-- KEYS: meta, heads, journal
-- What recovery starts from, as of one moment: the head version, the newest snapshot at or
-- below it, and the journal entries above that snapshot and at or below the head.
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return false end
local newest = newest_at_or_below(KEYS[2], head)
if not newest then return {head, false, false} end
return append_entries({head, newest, redis.call('HGET', KEYS[2], newest)}, KEYS[3], newest, head)
"""
)

EXPORT_CONTEXT = (
    _GREATER
    + """
-- KEYS: meta, heads, journal, points, point_blobs
-- Everything of one context as of one moment: the head version, the counts of snapshots,
-- journal entries and recovery points, then the snapshots and the journal entries at or
-- below the head as version, blob pairs, then the points as id, info, blob triples.
local head = redis.call('HGET', KEYS[1], 'version')
if not head then return false end
local reply = {head, 0, 0, 0}
for i, key in ipairs({KEYS[2], KEYS[3]}) do
  for _, version in ipairs(redis.call('HKEYS', key)) do
    if not greater(version, head) then
      reply[#reply + 1] = version
      reply[#reply + 1] = redis.call('HGET', key, version)
      reply[i + 1] = reply[i + 1] + 1
    end
  end
end
local points = redis.call('HGETALL', KEYS[4])
for i = 1, #points, 2 do
  reply[#reply + 1] = points[i]
  reply[#reply + 1] = points[i + 1]
  reply[#reply + 1] = redis.call('HGET', KEYS[5], points[i]) or false
  reply[4] = reply[4] + 1
end
return reply
"""
)

IMPORT_CONTEXT = (
    _PUBLISH
    + """
-- KEYS: meta, heads, points, point_blobs, journal
-- ARGV: replace (1 or 0), head, channel, name, snapshots, entries, points, then the
-- snapshots and the journal entries as version, blob pairs and the points as id, info, blob
-- The meta key, which makes the context visible, is written last and deleted first: a
-- script the server fails half way leaves the context missing or whole.
if redis.call('EXISTS', KEYS[1]) == 1 and ARGV[1] ~= '1' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local at = 8
for _ = 1, tonumber(ARGV[5]) do
  redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1])
  at = at + 2
end
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HSET', KEYS[5], ARGV[at], ARGV[at + 1])
  at = at + 2
end
for _ = 1, tonumber(ARGV[7]) do
  redis.call('HSET', KEYS[4], ARGV[at], ARGV[at + 2])
  redis.call('HSET', KEYS[3], ARGV[at], ARGV[at + 1])
  at = at + 3
end
redis.call('HSET', KEYS[1], 'version', ARGV[2])
publish(ARGV[3], ARGV[4] .. ' ' .. ARGV[2])
return 1
"""
)

DELETE = (
    _PUBLISH
    + """
-- KEYS: meta, heads, points, point_blobs, journal   ARGV: channel, name
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
publish(ARGV[1], ARGV[2] .. ' -')
return 1
"""
)

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

UPGRADE_SCHEMA = """
-- KEYS: schema   ARGV: from, to
local stamp = redis.call('GET', KEYS[1])
if stamp ~= ARGV[1] then return stamp end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
"""

STAMP_SCHEMA = """
-- KEYS: schema   ARGV: version
-- Stamps an unstamped prefix and returns the stamp: one script rather than a MULTI, so that
-- it runs the same on one server and on a cluster (where the key is in a slot of its own).
redis.call('SETNX', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""
