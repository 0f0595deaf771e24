-- enqueue: a caller enters the queue.
-- ARGV[4] call id, [5] skill, [6] priority class, [7] priority bonus us, [8] caller,
-- [9] sticky seat ('' for none), [10] sticky window ms, [11] fallback skill.
-- Returns {'ok', 'queued'|'sticky'|'duplicate', call, seat, ...offers}.
local call, skill, priority = ARGV[4], ARGV[5], ARGV[6]
local bonus_us, caller = tonumber(ARGV[7]), ARGV[8]
local sticky_seat, sticky_ms, fallback = ARGV[9], tonumber(ARGV[10]), ARGV[11]
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
    emit('ENTERQUEUE', 'call', call, 'skill', skill, 'priority', priority, 'position', 1,
         'sticky_seat', sticky_seat)
    out[2] = 'sticky'
    return add_pair(out, offer(call, sticky_seat))
  elseif state ~= 'offline' and sticky_ms > 0 then
    redis.call('HSET', ckey, 'sticky_seat', sticky_seat)
    redis.call('ZADD', K_STICKY, NOW + sticky_ms, call)
    redis.call('ZADD', P_STICKY_SEAT .. sticky_seat, score, call)
    emit('ENTERQUEUE', 'call', call, 'skill', skill, 'priority', priority, 'position', 1,
         'sticky_seat', sticky_seat)
    out[2] = 'sticky'
    return out
  end
  -- The operator is not logged in: no reason to make the caller wait for them.
end

redis.call('ZADD', P_WAITING .. skill, score, call)
emit('ENTERQUEUE', 'call', call, 'skill', skill, 'priority', priority,
     'position', queue_position(skill, score))
return try_match(1, out)
