-- pause_next: pause the seat when its current call and wrap-up are over ("pause after
-- this call"), with a reason; an empty reason cancels. A seat that is not busy is
-- paused now. ARGV[5] seat id, [6] reason or '', [7] '1' to keep a pause already chosen
-- (signing out on a call must not replace the lunch break the operator asked for).
local seat, reason, keep_chosen = ARGV[5], ARGV[6], ARGV[7] == '1'
local state = seat_state(seat)
if state == 'offline' then return {'err', 'not-logged-in'} end
if reason == '' then
  redis.call('HDEL', P_SEAT .. seat, 'pause_next')
  emit('PAUSE_NEXT', 'seat', seat, 'reason', '')
  return {'ok', 'cancelled'}
end
if state == 'on_call' or state == 'wrap_up' or state == 'offered' then
  if keep_chosen and redis.call('HEXISTS', P_SEAT .. seat, 'pause_next') == 1 then
    return {'ok', 'after-call'}
  end
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
