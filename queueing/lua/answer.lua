-- answer: the offered seat picked up; caller and operator are talking.
-- ARGV[5] call id, [6] seat id. Returns {'ok', 'connected'|'duplicate'} or {'err', code}.
local call, seat = ARGV[5], ARGV[6]
local ckey = P_CALL .. call
local state, offered_seat, entered, offered_at =
  unpack(redis.call('HMGET', ckey, 'state', 'seat', 'entered', 'offered_at'))
if not state then return {'err', 'no-such-call'} end
if offered_seat ~= seat then return {'err', 'not-offered-to-seat'} end
if state == 'on_call' then return {'ok', 'duplicate'} end
if state ~= 'offered' then return {'err', 'not-offered'} end

redis.call('ZREM', K_OFFERS, call)
redis.call('HSET', ckey, 'state', 'on_call', 'answered_at', NOW)
set_seat_state(seat, 'on_call', '', call)
emit('CONNECT', 'call', call, 'seat', seat, 'wait_ms', NOW - tonumber(entered),
     'ring_ms', NOW - tonumber(offered_at))
return {'ok', 'connected'}
