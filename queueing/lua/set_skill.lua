-- set_skill: a waiting caller chose a language. Same entry time, other seats; if
-- nobody logged in has that language, the fallback skill. Too late once offered.
-- ARGV[5] call id, [6] skill, [7] fallback skill.
local call, skill, fallback = ARGV[5], ARGV[6], ARGV[7]
local ckey = P_CALL .. call
local state, old, score, sticky_seat = unpack(redis.call('HMGET', ckey, 'state', 'skill', 'score', 'sticky_seat'))
if not state then return {'err', 'no-such-call'} end
if state ~= 'waiting' then return {'ok', 'too-late'} end

local requested = skill
if skill ~= fallback and redis.call('EXISTS', P_STAFFED .. skill) == 0 then skill = fallback end
redis.call('HSET', ckey, 'skill', skill, 'requested_skill', requested)
redis.call('SADD', K_SKILLS, skill)
if sticky_seat and sticky_seat ~= '' then return {'ok', 'sticky'} end
if skill == old then return {'ok', 'unchanged'} end
redis.call('ZREM', P_WAITING .. old, call)
redis.call('ZADD', P_WAITING .. skill, score, call)
emit('SKILL', 'call', call, 'skill', skill, 'requested', requested)
return try_match(1, {'ok', 'changed'})
