-- complete: the conversation ended (operator or caller hung up). The seat goes to
-- wrap-up, or straight back to available when wrap-up is 0.
-- ARGV[5] call id, [6] who ended it ('agent' | 'caller').
-- Returns {'ok', 'completed'|'already-ended', ...offers} or {'err', code}.
local call, by = ARGV[5], ARGV[6]
local ckey = P_CALL .. call
local state, seat, answered_at = unpack(redis.call('HMGET', ckey, 'state', 'seat', 'answered_at'))
if not state then return {'err', 'no-such-call'} end
if state == 'ended' then return {'ok', 'already-ended'} end
if state ~= 'on_call' then return {'err', 'not-connected'} end

local talk_ms = NOW - tonumber(answered_at)
end_call(call, 'completed')
emit('COMPLETE', 'call', call, 'seat', seat, 'by', by, 'talk_ms', talk_ms)
return finish_seat(seat, call, talk_ms, {'ok', 'completed'})
