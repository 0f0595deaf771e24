-- position: where a call stands, for announcements and the estimated wait.
-- ARGV[5] call id. Returns {'ok', state, position, working seats for its skill (taking
-- calls: not paused), available seats for its skill, average handle time ms, seat,
-- logged-in seats for its skill}.
local call = ARGV[5]
local state, skill, score, sticky_seat, seat = unpack(redis.call(
  'HMGET', P_CALL .. call, 'state', 'skill', 'score', 'sticky_seat', 'seat'))
if not state then return {'err', 'no-such-call'} end
local position = 0
if state == 'waiting' then
  if sticky_seat and sticky_seat ~= '' then position = 1
  else position = queue_position(skill, score) end
end
-- Constant time: the Twilio wait URL and hold loops call this for every waiting caller.
return {'ok', state, position, redis.call('SCARD', P_WORKING .. skill),
        redis.call('ZCARD', P_AVAILABLE .. skill),
        tonumber(redis.call('HGET', K_STATS, 'aht_ms') or '0'), seat or '',
        redis.call('SCARD', P_STAFFED .. skill)}
