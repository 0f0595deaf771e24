-- ringing: the adapter is ringing the offered seat now. The lease is re-armed for the
-- ring time, so an operator who picks up anywhere within it is accepted.
-- ARGV[5] call id, [6] seat id, [7] ms until the telephony starts ringing (media it
-- plays first, e.g. Twilio speaking before its <Dial>).
-- Returns {'ok', 'ringing'|'stale'} or {'err', code}.
local call, seat, delay_ms = ARGV[5], ARGV[6], tonumber(ARGV[7] or '0')
local ckey = P_CALL .. call
local state, offered_seat = unpack(redis.call('HMGET', ckey, 'state', 'seat'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'offered' or offered_seat ~= seat then return {'ok', 'stale'} end
redis.call('HSET', ckey, 'ringing_at', NOW + delay_ms)
redis.call('ZADD', K_OFFERS, NOW + delay_ms + OFFER_MS, call)
emit('RINGING', 'call', call, 'seat', seat)
return {'ok', 'ringing'}
