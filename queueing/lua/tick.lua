-- tick: the reaper's sweep, run every few hundred milliseconds by any process.
-- Expired offers -> ring-no-answer (or, if the seat never rang, back to the head of the
-- line with the seat free); finished wrap-ups -> available; expired sticky
-- windows -> the caller falls back to anyone; silent seats -> offline; waiting calls
-- older than the maximum wait (their adapter is gone) -> ended. Then match.
-- ARGV[5] seat heartbeat ttl ms, [6] max wait ms, [7] max items per kind.
local ttl_ms, max_wait_ms, limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {'ok', 'swept'}
local counts = {0, 0, 0, 0, 0, 0}

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
  add_pair(out, make_available(seat, 'wrap-up ended'))
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

local stale_before = NOW - max_wait_ms
for _, call in ipairs(redis.call('ZRANGEBYSCORE', K_LIVE, '-inf', stale_before, 'LIMIT', 0, limit)) do
  local ckey = P_CALL .. call
  local state, skill, entered = unpack(redis.call('HMGET', ckey, 'state', 'skill', 'entered'))
  if state == 'waiting' then
    take_out_of_line(call)
    end_call(call, 'expired')
    emit('EXITWITHTIMEOUT', 'call', call, 'skill', skill, 'wait_ms', NOW - tonumber(entered))
    counts[5] = counts[5] + 1
  end
end

out[2] = table.concat(counts, ',')
return try_match(limit, out)
