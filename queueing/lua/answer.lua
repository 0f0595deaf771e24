-- answer: the offered seat picked up; caller and operator are talking.
-- ARGV[5] call id, [6] seat id, [7] '1' when the telephony reports that this seat did
-- talk with the caller (Dial answered, Twilio's DialCallStatus completed): the record
-- then follows what happened even if the queue had moved on (the offer expired, the
-- call was offered to another seat). Returns {'ok', 'connected'|'duplicate', ...offers}
-- or {'err', code}.
local call, seat, force = ARGV[5], ARGV[6], ARGV[7] == '1'
local ckey = P_CALL .. call
local state, offered_seat, entered, offered_at, operator =
  unpack(redis.call('HMGET', ckey, 'state', 'seat', 'entered', 'offered_at', 'seat_owner'))
if not state then return {'err', 'no-such-call'} end
if state == 'on_call' and offered_seat == seat then return {'ok', 'duplicate'} end
local out = {'ok', 'connected'}
local late = not (state == 'offered' and offered_seat == seat)
if late then
  if not force then
    if offered_seat ~= seat then return {'err', 'not-offered-to-seat'} end
    return {'err', 'not-offered'}
  end
  if state == 'ended' then return {'err', 'call-ended'} end
  if state == 'on_call' then return {'err', 'connected-elsewhere'} end
  local current = seat_state(seat)
  if current == 'on_call' then return {'err', 'seat-busy'} end
  if state == 'waiting' then
    take_out_of_line(call)
  else  -- offered to another seat: that seat is free again
    redis.call('ZREM', K_OFFERS, call)
    add_pair(out, make_available(offered_seat, 'answered elsewhere'))
  end
  if current == 'offered' then release_offer(seat, 'answered another call') end
  leave_available(seat)
  redis.call('ZREM', K_WRAPUPS, seat)
  if not offered_at or offered_at == '' then offered_at = NOW end
end

redis.call('ZREM', K_OFFERS, call)
redis.call('HSET', ckey, 'state', 'on_call', 'seat', seat, 'answered_at', NOW)
-- Who answered: the seat's operator (their own day's figures follow them, not the seat).
-- Offered to this seat, the call holds it (a seat's owner cannot change while offered).
if late or not operator then operator = seat_owner(seat) end
set_seat_state(seat, 'on_call', '', call)
emit('CONNECT', 'call', call, 'seat', seat, 'wait_ms', NOW - tonumber(entered),
     'ring_ms', NOW - tonumber(offered_at), 'late', late and '1' or '0', 'operator', operator)
return out
