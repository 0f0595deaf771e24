-- pause_next: pause the seat when its current call and wrap-up are over ("pause after
-- this call"), with a reason; an empty reason cancels. A seat that is not busy is
-- paused now. ARGV[5] seat id, [6] reason or ''.
local seat, reason = ARGV[5], ARGV[6]
local state = seat_state(seat)
if state == 'offline' then return {'err', 'not-logged-in'} end
if reason == '' then
  redis.call('HDEL', P_SEAT .. seat, 'pause_next')
  emit('PAUSE_NEXT', 'seat', seat, 'reason', '')
  return {'ok', 'cancelled'}
end
if state == 'on_call' or state == 'wrap_up' or state == 'offered' then
  redis.call('HSET', P_SEAT .. seat, 'pause_next', reason)
  emit('PAUSE_NEXT', 'seat', seat, 'reason', reason)
  return {'ok', 'after-call'}
end
if state == 'paused' then
  redis.call('HSET', P_SEAT .. seat, 'reason', reason)
  return {'ok', 'paused'}
end
leave_available(seat)
set_seat_state(seat, 'paused', reason)
return {'ok', 'paused'}
