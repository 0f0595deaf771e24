-- leave: a waiting caller leaves the queue by choice (a callback was recorded).
-- Logged as EXITWITHKEY, as Asterisk's app_queue does; not an abandon.
-- ARGV[5] call id, [6] reason.
local call, reason = ARGV[5], ARGV[6]
local ckey = P_CALL .. call
local state, skill, entered = unpack(redis.call('HMGET', ckey, 'state', 'skill', 'entered'))
if not state then return {'err', 'no-such-call'} end
if state == 'ended' then return {'ok', 'already-ended'} end
if state ~= 'waiting' then return {'err', 'not-waiting'} end
local position = take_out_of_line(call)
end_call(call, 'callback')
emit('EXITWITHKEY', 'call', call, 'skill', skill, 'reason', reason,
     'wait_ms', NOW - tonumber(entered), 'position', position)
return {'ok', 'left'}
