-- seat_logout: an operator logs out. A call ringing at the seat goes back to the head
-- of the queue. A seat in conversation cannot log out, unless forced by a supervisor
-- (the seat is stuck: its call's hang-up was lost): the call is then completed.
-- ARGV[5] seat id, [6] '1' to force, [7] who logs it out (kept on the seat as
-- 'logout_by', so its operator's console can say why). Returns {'ok', 'logged-out'|'forced'|
-- 'already-offline', ...offers} or {'err', 'seat-busy'}.
local seat, force, by = ARGV[5], ARGV[6] == '1', ARGV[7] or ''
local state = seat_state(seat)
if state == 'offline' then return {'ok', 'already-offline'} end
local result = 'logged-out'
if state == 'on_call' then
  if not force then return {'err', 'seat-busy'} end
  local call = redis.call('HGET', P_SEAT .. seat, 'call')
  local ckey = P_CALL .. (call or '')
  local cstate, answered_at = unpack(redis.call('HMGET', ckey, 'state', 'answered_at'))
  if cstate == 'on_call' then
    local talk_ms = NOW - tonumber(answered_at)
    end_call(call, 'completed')
    emit('COMPLETE', 'call', call, 'seat', seat, 'by', 'supervisor', 'talk_ms', talk_ms)
  end
  set_seat_state(seat, 'paused', 'forced logout')
  result = 'forced'
end
redis.call('HSET', P_SEAT .. seat, 'logout_by', by)
logout(seat, result == 'forced' and 'forced logout' or 'logout')
return try_match(1, {'ok', result})
