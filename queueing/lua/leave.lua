-- leave: a waiting caller leaves the queue by choice (a callback was recorded).
-- Logged as EXITWITHKEY, as Asterisk's app_queue does; not an abandon. A call whose
-- offer landed just as the caller chose (it is offered, not yet ringing or answered)
-- leaves too, and its seat is freed, not paused: otherwise the offer would expire
-- back into the queue and hold a caller who is no longer there.
-- ARGV[5] call id, [6] reason. Returns {'ok', 'left', ...offers}.
local call, reason = ARGV[5], ARGV[6]
local ckey = P_CALL .. call
local state, skill, entered, seat = unpack(redis.call(
  'HMGET', ckey, 'state', 'skill', 'entered', 'seat'))
if not state then return {'err', 'no-such-call'} end
if state == 'ended' then return {'ok', 'already-ended'} end
if state == 'waiting' then
  local position = take_out_of_line(call)
  end_call(call, 'callback')
  emit('EXITWITHKEY', 'call', call, 'skill', skill, 'reason', reason,
       'wait_ms', NOW - tonumber(entered), 'position', position)
  return {'ok', 'left'}
end
if state ~= 'offered' then return {'err', 'not-waiting'} end
end_call(call, 'callback')
emit('EXITWITHKEY', 'call', call, 'skill', skill, 'reason', reason,
     'wait_ms', NOW - tonumber(entered), 'position', 0, 'seat', seat)
local out = {'ok', 'left'}
add_pair(out, make_available(seat, 'caller left for a callback'))
return try_match(1, out)
