-- enqueue: a caller enters the queue.
-- ARGV[5] call id, [6] skill, [7] priority class, [8] priority bonus us, [9] caller,
-- [10] sticky seat ('' for none), [11] sticky window ms, [12] fallback skill.
-- Returns {'ok', 'queued'|'sticky'|'duplicate', call, seat, ...offers}.
local call, skill, priority = ARGV[5], ARGV[6], ARGV[7]
local bonus_us, caller = tonumber(ARGV[8]), ARGV[9]
local sticky_seat, sticky_ms, fallback = ARGV[10], tonumber(ARGV[11]), ARGV[12]
local ckey = P_CALL .. call

local existing = redis.call('HGET', ckey, 'state')
if existing then
  if existing == 'ended' then return {'err', 'call-ended'} end
  return {'ok', 'duplicate'}  -- a retried webhook: the call is already queued
end

-- Nobody logged in who speaks this language: a person who does not is better than none.
local requested = skill
if skill ~= fallback and redis.call('EXISTS', P_STAFFED .. skill) == 0 then
  skill = fallback
end

local score = string.format('%d', next_entry_us() - bonus_us)
redis.call('HSET', ckey, 'state', 'waiting', 'skill', skill, 'requested_skill', requested,
           'priority', priority, 'entered', NOW, 'score', score, 'caller', caller,
           'seat', '', 'sticky_seat', '')
redis.call('ZADD', K_LIVE, NOW, call)
redis.call('SADD', K_SKILLS, skill)

local out = {'ok', 'queued'}
if sticky_seat ~= '' then
  local state = seat_state(sticky_seat)
  if state == 'available' then
    emit('ENTERQUEUE', 'call', call, 'caller', caller, 'skill', skill, 'priority', priority, 'position', 1,
         'sticky_seat', sticky_seat)
    out[2] = 'sticky'
    return add_pair(out, offer(call, sticky_seat))
  elseif state ~= 'offline' and sticky_ms > 0 then
    redis.call('HSET', ckey, 'sticky_seat', sticky_seat)
    redis.call('ZADD', K_STICKY, NOW + sticky_ms, call)
    redis.call('ZADD', P_STICKY_SEAT .. sticky_seat, score, call)
    emit('ENTERQUEUE', 'call', call, 'caller', caller, 'skill', skill, 'priority', priority, 'position', 1,
         'sticky_seat', sticky_seat)
    out[2] = 'sticky'
    return out
  end
  -- The operator is not logged in: no reason to make the caller wait for them.
end

redis.call('ZADD', P_WAITING .. skill, score, call)
emit('ENTERQUEUE', 'call', call, 'caller', caller, 'skill', skill, 'priority', priority,
     'position', queue_position(skill, score))
return try_match(1, out)
