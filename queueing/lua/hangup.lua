-- hangup: the caller hung up, wherever the call was.
-- Waiting -> ABANDON (wait and position recorded); ringing a seat -> ABANDON and the
-- seat is freed; talking -> COMPLETE by the caller. Repeats change nothing.
-- ARGV[5] call id. Returns {'ok', 'abandoned'|'completed'|'already-ended', ...offers}.
local call = ARGV[5]
local ckey = P_CALL .. call
local state, skill, entered, seat, answered_at = unpack(redis.call(
  'HMGET', ckey, 'state', 'skill', 'entered', 'seat', 'answered_at'))
if not state then return {'err', 'no-such-call'} end
if state == 'ended' then return {'ok', 'already-ended'} end

local out = {'ok', 'abandoned'}
if state == 'waiting' then
  local position = take_out_of_line(call)
  end_call(call, 'abandoned')
  emit('ABANDON', 'call', call, 'skill', skill, 'wait_ms', NOW - tonumber(entered),
       'position', position)
  return out
elseif state == 'offered' then
  end_call(call, 'abandoned')
  emit('ABANDON', 'call', call, 'skill', skill, 'wait_ms', NOW - tonumber(entered),
       'position', 0, 'seat', seat)
  add_pair(out, make_available(seat, 'caller hung up'))
  return try_match(1, out)
end

-- on_call
out[2] = 'completed'
end_call(call, 'completed')
emit('COMPLETE', 'call', call, 'seat', seat, 'by', 'caller',
     'talk_ms', NOW - tonumber(answered_at))
return finish_seat(seat, call, NOW - tonumber(answered_at), out)
