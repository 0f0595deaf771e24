-- no_answer: the offered seat did not pick up (ring-no-answer, busy, unreachable).
-- The seat is paused so it is not offered again; the call goes back to the head of
-- its class with its original entry time, and may be offered at once to another seat.
-- ARGV[5] call id, [6] seat id, [7] reason.
local call, seat, reason = ARGV[5], ARGV[6], ARGV[7]
local ckey = P_CALL .. call
local state, offered_seat = unpack(redis.call('HMGET', ckey, 'state', 'seat'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'offered' or offered_seat ~= seat then return {'ok', 'stale'} end

requeue(call)
emit('RINGNOANSWER', 'call', call, 'seat', seat, 'reason', reason)
leave_available(seat)
set_seat_state(seat, 'paused', 'no answer')
return try_match(1, {'ok', 'requeued'})
