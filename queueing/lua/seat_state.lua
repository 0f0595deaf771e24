-- seat_state: an operator makes the seat available or pauses it (with a reason).
-- Pausing while a call rings sends that call back to the head of the queue.
-- ARGV[5] seat id, [6] 'available'|'paused', [7] reason.
local seat, wanted, reason = ARGV[5], ARGV[6], ARGV[7]
local state = seat_state(seat)
if state == 'offline' then return {'err', 'not-logged-in'} end
if state == 'on_call' then return {'err', 'seat-busy'} end
redis.call('ZADD', K_HEARTBEATS, NOW, seat)
-- 'Ready' at the end of a wrap-up ends the wrap-up: a pending "pause after this call"
-- then takes effect, as it would have when the wrap-up timed out.
if wanted == 'available' and state == 'wrap_up' then
  local out = {'ok', 'available'}
  add_pair(out, after_call(seat, ''))
  if seat_state(seat) == 'paused' then out[2] = 'paused' end
  return try_match(1, out)
end
redis.call('HDEL', P_SEAT .. seat, 'pause_next')  -- an explicit choice replaces it

if wanted == 'paused' then
  if state == 'paused' and redis.call('HGET', P_SEAT .. seat, 'reason') == reason then
    return {'ok', 'unchanged'}
  end
  release_offer(seat, 'paused')
  leave_available(seat)
  redis.call('ZREM', K_WRAPUPS, seat)
  set_seat_state(seat, 'paused', reason)
  return try_match(1, {'ok', 'paused'})
end

-- available
if state == 'available' then return {'ok', 'unchanged'} end
if state == 'offered' then return {'err', 'seat-busy'} end
local out = {'ok', 'available'}
add_pair(out, make_available(seat, ''))
return try_match(1, out)
