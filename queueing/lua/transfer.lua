-- transfer: the operator hands a connected call on. The operator's seat finishes the
-- call (wrap-up) as after any conversation; a transfer is never an abandon.
--   'out'   a blind transfer out of the centre (an emergency line): the call ends,
--           outcome 'transferred', and COMPLETE is emitted (the talk happened).
--   'unit'  handed to a unit's duty phone after a consult (consult.lua): ends as 'out'.
--   'skill' back in line for another skill (a Hainanese seat), at the head of its line.
--   'seat'  offered to a named seat now; it must be available.
-- ARGV[5] call id, [6] the operator's seat, [7] kind, [8] target (a line, skill or
-- seat), [9] fallback skill. Every kind records TRANSFER and the call's
-- 'transferred_from' (that seat), so the telephony leg it leaves ends quietly.
-- Returns {'ok', 'transferred'|'requeued'|'offered', ...offers} or {'err', code}.
local call, seat, kind, target = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local ckey = P_CALL .. call
local state, on_seat, answered_at, score, consult =
  unpack(redis.call('HMGET', ckey, 'state', 'seat', 'answered_at', 'score', 'consult'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'on_call' or on_seat ~= seat then return {'err', 'not-connected'} end
-- During a consult the caller is handed only to the unit consulted (or the consult ends).
if consult and consult ~= '' and kind ~= 'unit' then return {'err', 'consult-busy'} end
if kind == 'skill' and redis.call('EXISTS', P_STAFFED .. target) == 0 then
  return {'err', 'unstaffed-skill', target}
end
if kind == 'seat' then
  if target == seat then return {'err', 'bad-argument', 'the same seat'} end
  if seat_state(target) ~= 'available' then return {'err', 'seat-unavailable', target} end
end
if kind ~= 'out' and kind ~= 'unit' and kind ~= 'skill' and kind ~= 'seat' then
  return {'err', 'bad-argument', 'kind'}
end

local talk_ms = NOW - tonumber(answered_at)
redis.call('HSET', ckey, 'transferred_from', seat, 'transfer_kind', kind, 'transferred_to', target)
emit('TRANSFER', 'call', call, 'seat', seat, 'kind', kind, 'to', target, 'talk_ms', talk_ms)
local out = {'ok', 'transferred'}
if kind == 'out' or kind == 'unit' then
  end_call(call, 'transferred')
  emit('COMPLETE', 'call', call, 'seat', seat, 'by', 'agent', 'talk_ms', talk_ms)
  return finish_seat(seat, call, talk_ms, out)
end

-- Back in line. The offer or place comes before the seat it leaves is freed, so that
-- seat's next call (wrap-up 0) never takes the target seat first.
redis.call('HSET', ckey, 'state', 'waiting', 'seat', '', 'sticky_seat', '', 'answered_at', '')
if kind == 'seat' then
  out[2] = 'offered'
  add_pair(out, offer(call, target))
  return finish_seat(seat, call, talk_ms, out)
end
-- Ahead of everyone already waiting for that skill: they have not yet been helped.
local head = redis.call('ZRANGE', P_WAITING .. target, 0, 0, 'WITHSCORES')
local new_score = tonumber(score)
if head[2] and tonumber(head[2]) <= new_score then new_score = tonumber(head[2]) - 1 end
new_score = string.format('%d', new_score)
redis.call('HSET', ckey, 'skill', target, 'score', new_score)
redis.call('SADD', K_SKILLS, target)
redis.call('ZADD', P_WAITING .. target, new_score, call)
out[2] = 'requeued'
finish_seat(seat, call, talk_ms, out)
return try_match(1, out)
