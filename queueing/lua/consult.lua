-- consult: the operator consults a unit's duty phone about the connected call (咨询转接).
-- The call stays on_call at its seat throughout; while the operator talks to the unit
-- the caller holds (music), so 'held_at' is set as for a hold: the operator's leg that
-- the move ends changes nothing in the queue (calls.transfers.seat_leg_released).
--   'start'    the caller holds, the unit's duty phone is dialled: consult=consulting
--   'threeway' caller, unit and operator together (三方通话): consult=threeway
--   'cancel'   the unit is let go, the operator is back with the caller: consult cleared
--   'unit-left' the unit hung up during the three-way call: operator and caller talk on,
--              as before the consult (consult cleared)
-- Handing the caller to the unit (complete, or the operator leaving a three-way call) is
-- transfer.lua's kind 'unit'.
-- ARGV[5] call id, [6] the operator's seat, [7] step, [8] the unit (start).
-- Returns {'ok', 'consulting'|'threeway'|'cancelled'|'talking'} or {'err', code}.
local call, seat, step, unit = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local ckey = P_CALL .. call
local state, on_seat, held_at, consult =
  unpack(redis.call('HMGET', ckey, 'state', 'seat', 'held_at', 'consult'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'on_call' or on_seat ~= seat then return {'err', 'not-connected'} end
consult = consult or ''

if step == 'start' then
  if consult ~= '' then return {'err', 'consult-busy'} end
  if held_at and held_at ~= '' then return {'err', 'on-hold'} end
  if not unit or unit == '' then return {'err', 'bad-argument', 'unit'} end
  redis.call('HSET', ckey, 'held_at', NOW, 'consult', 'consulting', 'consult_unit', unit,
    'consult_at', NOW)
  emit('CONSULT', 'call', call, 'seat', seat, 'step', 'start', 'to', unit)
  return {'ok', 'consulting'}
end
if step == 'threeway' then
  if consult ~= 'consulting' then return {'err', 'no-consult'} end
  redis.call('HSET', ckey, 'held_at', '', 'consult', 'threeway')
  emit('CONSULT', 'call', call, 'seat', seat, 'step', 'threeway',
    'hold_ms', NOW - tonumber(held_at))
  return {'ok', 'threeway'}
end
if step == 'cancel' then
  if consult ~= 'consulting' then return {'err', 'no-consult'} end
  redis.call('HSET', ckey, 'held_at', '', 'consult', '', 'consult_unit', '', 'consult_at', '')
  emit('CONSULT', 'call', call, 'seat', seat, 'step', 'cancel',
    'hold_ms', NOW - tonumber(held_at))
  return {'ok', 'cancelled'}
end
if step == 'unit-left' then
  if consult ~= 'threeway' then return {'err', 'no-consult'} end
  redis.call('HSET', ckey, 'consult', '', 'consult_unit', '', 'consult_at', '')
  emit('CONSULT', 'call', call, 'seat', seat, 'step', 'unit-left')
  return {'ok', 'talking'}
end
return {'err', 'bad-argument', 'step'}
