-- seat_login: an operator logs in with skills and becomes available.
-- Logging in again while idle updates the skills. A seat belongs to the user who logged
-- in to it until it is logged out: another user is refused ('seat-taken'), whoever
-- they are (a supervisor forces a logout first).
-- Its owner logging in while it rings, talks or wraps up (their web sign-in ended
-- mid-call) resumes it: the console attaches, the seat and its call stay as they are;
-- logged out by a lapsed heartbeat with its call still on it, it goes back on that call.
-- ARGV[5] seat id, [6] skills csv, [7] owner (user name; '' for none).
-- Returns {'ok', 'logged-in', ...offers}, {'ok', 'resumed'} or {'err', code[, owner]}.
local seat, skills_csv, owner = ARGV[5], ARGV[6], ARGV[7] or ''
local skey = P_SEAT .. seat
local state = seat_state(seat)
local current = ''
if state ~= 'offline' then
  current = redis.call('HGET', skey, 'owner') or ''
  if current ~= '' and current ~= owner then return {'err', 'seat-taken', current} end
end
local busy = state == 'offered' or state == 'on_call'
if (busy or state == 'wrap_up') and current ~= '' then  -- owner == current here
  redis.call('ZADD', K_HEARTBEATS, NOW, seat)  -- its console is back
  -- Signed out mid-call, then back: the pause that sign-out set after the call is off.
  if redis.call('HGET', skey, 'pause_next') == 'signed_out' then
    redis.call('HDEL', skey, 'pause_next')
    emit('PAUSE_NEXT', 'seat', seat, 'reason', '')
  end
  return {'ok', 'resumed'}
end
if busy then return {'err', 'seat-busy-login'} end  -- a seat nobody owns, mid-call

-- Offline with its call still going on it: the console's heartbeat lapsed mid-call
-- (the operator's sign-in ended and took longer than the heartbeat's time to come
-- back). Its owner gets it back on that call; nobody else may make it free meanwhile.
local kept_call = ''
if state == 'offline' then
  local kept = redis.call('HGET', skey, 'call') or ''
  if kept ~= '' then
    local call_state, call_seat = unpack(redis.call('HMGET', P_CALL .. kept, 'state', 'seat'))
    if call_state == 'on_call' and call_seat == seat then kept_call = kept end
  end
  if kept_call ~= '' then
    local was = redis.call('HGET', skey, 'owner') or ''
    if was ~= owner then
      if was ~= '' then return {'err', 'seat-taken', was} end
      return {'err', 'seat-busy-login'}
    end
  end
end

local old_skills = {}
if state ~= 'offline' then
  leave_available(seat)
  old_skills = seat_skills(seat)
  for _, skill in ipairs(old_skills) do
    redis.call('SREM', P_STAFFED .. skill, seat)
    redis.call('SREM', P_WORKING .. skill, seat)
  end
end
redis.call('HSET', skey, 'skills', skills_csv, 'login_at', NOW, 'owner', owner, 'logout_by', '')
forget_skills(seat)
for _, skill in ipairs(split(skills_csv)) do
  redis.call('SADD', P_STAFFED .. skill, seat)
  redis.call('SADD', K_SKILLS, skill)
end
for _, skill in ipairs(old_skills) do rehome_if_unstaffed(skill) end  -- a skill dropped
redis.call('ZADD', K_HEARTBEATS, NOW, seat)
if kept_call ~= '' then
  set_seat_state(seat, 'on_call', 'login', kept_call)
  return {'ok', 'resumed'}
end
-- A pause someone asked for after a call that this seat no longer has is not theirs.
redis.call('HDEL', skey, 'pause_next')
local out = {'ok', 'logged-in'}
add_pair(out, make_available(seat, 'login'))
return try_match(1, out)
