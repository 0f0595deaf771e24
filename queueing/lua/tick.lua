-- tick: the reaper's sweep, run every few hundred milliseconds by any process.
-- Expired offers -> ring-no-answer (or, if the seat never rang, back to the head of the
-- line with the seat free); finished wrap-ups -> available; expired sticky
-- windows -> the caller falls back to anyone; silent seats -> offline; waiting calls
-- older than the maximum wait (their adapter is gone) -> ended; conversations longer
-- than the maximum talk time -> completed. Then match.
-- ARGV[5] seat heartbeat ttl ms, [6] max wait ms, [7] max items per kind,
-- [8] max talk ms. Returns {'ok', counts csv, ...offer pairs, '|', ...calls talked out}.
local ttl_ms, max_wait_ms, limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local max_talk_ms = tonumber(ARGV[8])
local out = {'ok', 'swept'}
local counts = {0, 0, 0, 0, 0, 0, 0}

for _, call in ipairs(redis.call('ZRANGEBYSCORE', K_OFFERS, '-inf', NOW, 'LIMIT', 0, limit)) do
  local seat, ringing_at = unpack(redis.call('HMGET', P_CALL .. call, 'seat', 'ringing_at'))
  requeue(call)
  if ringing_at and ringing_at ~= '' then
    emit('RINGNOANSWER', 'call', call, 'seat', seat, 'reason', 'timeout')
    leave_available(seat)
    set_seat_state(seat, 'paused', 'no answer')
    counts[1] = counts[1] + 1
  else
    -- The seat never rang (the adapter lost the offer): not the operator's doing.
    emit('OFFER_EXPIRED', 'call', call, 'seat', seat)
    add_pair(out, make_available(seat, 'offer not taken up'))
    counts[6] = counts[6] + 1
  end
end

for _, seat in ipairs(redis.call('ZRANGEBYSCORE', K_WRAPUPS, '-inf', NOW, 'LIMIT', 0, limit)) do
  add_pair(out, after_call(seat, 'wrap-up ended'))
  counts[2] = counts[2] + 1
end

for _, call in ipairs(redis.call('ZRANGEBYSCORE', K_STICKY, '-inf', NOW, 'LIMIT', 0, limit)) do
  requeue(call)
  emit('STICKY_EXPIRED', 'call', call)
  counts[3] = counts[3] + 1
end

local dead_before = NOW - ttl_ms
for _, seat in ipairs(redis.call('ZRANGEBYSCORE', K_HEARTBEATS, '-inf', dead_before, 'LIMIT', 0, limit)) do
  logout(seat, 'heartbeat lost')
  counts[4] = counts[4] + 1
end

-- Live calls old enough to be stale: waiting past the maximum wait (their adapter is
-- gone), or talking past the maximum talk time (a lost hang-up: fail-safe). A call
-- that is neither keeps its place at the head of this range, so the range is read
-- from a cursor that moves past it instead of stopping there.
local oldest_stale = NOW - math.min(max_wait_ms, max_talk_ms)
local cursor = tonumber(redis.call('HGET', K_STATS, 'stale_cursor') or '0')
local scanned = redis.call('ZRANGEBYSCORE', K_LIVE, '(' .. cursor, oldest_stale,
                           'WITHSCORES', 'LIMIT', 0, limit)
if #scanned == 0 then
  redis.call('HSET', K_STATS, 'stale_cursor', 0)  -- back to the start next sweep
end
local talked_out = {}
for i = 1, #scanned, 2 do
  local call = scanned[i]
  redis.call('HSET', K_STATS, 'stale_cursor', scanned[i + 1])
  local ckey = P_CALL .. call
  local state, skill, entered, seat, answered_at = unpack(redis.call(
    'HMGET', ckey, 'state', 'skill', 'entered', 'seat', 'answered_at'))
  if state == 'waiting' and tonumber(entered) < NOW - max_wait_ms then
    take_out_of_line(call)
    end_call(call, 'expired')
    emit('EXITWITHTIMEOUT', 'call', call, 'skill', skill, 'wait_ms', NOW - tonumber(entered))
    counts[5] = counts[5] + 1
  elseif state == 'on_call' and tonumber(answered_at) < NOW - max_talk_ms then
    local talk_ms = NOW - tonumber(answered_at)
    end_call(call, 'completed')
    emit('COMPLETE', 'call', call, 'seat', seat, 'by', 'max-talk', 'talk_ms', talk_ms)
    finish_seat(seat, call, talk_ms, out)
    talked_out[#talked_out + 1] = call
    counts[7] = counts[7] + 1
  end
end

out[2] = table.concat(counts, ',')
try_match(limit, out)
-- The calls completed here need their cases: listed after a separator.
out[#out + 1] = '|'
for _, call in ipairs(talked_out) do out[#out + 1] = call end
return out
