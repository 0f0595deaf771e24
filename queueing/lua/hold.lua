-- hold: the operator puts the connected caller on hold (music), or takes them back.
-- The call stays on_call at its seat: nobody else is offered it, and the seat keeps it.
-- While 'held' is set, the operator's telephony leg may end (the caller was moved to
-- music) without ending the call.
-- ARGV[5] call id, [6] the operator's seat, [7] '1' hold, '' resume.
-- Returns {'ok', 'held'|'resumed'|'unchanged'} or {'err', code}.
local call, seat, on = ARGV[5], ARGV[6], ARGV[7] == '1'
local ckey = P_CALL .. call
local state, on_seat, held_at, consult =
  unpack(redis.call('HMGET', ckey, 'state', 'seat', 'held_at', 'consult'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'on_call' or on_seat ~= seat then return {'err', 'not-connected'} end
-- A consult (consult.lua) holds the caller itself, and ends by its own steps.
if consult and consult ~= '' then return {'err', 'consult-busy'} end
local held = held_at and held_at ~= ''
if on == held then return {'ok', 'unchanged'} end
if on then
  redis.call('HSET', ckey, 'held_at', NOW)
  emit('HOLD', 'call', call, 'seat', seat)
  return {'ok', 'held'}
end
redis.call('HSET', ckey, 'held_at', '')
emit('UNHOLD', 'call', call, 'seat', seat, 'hold_ms', NOW - tonumber(held_at))
return {'ok', 'resumed'}
