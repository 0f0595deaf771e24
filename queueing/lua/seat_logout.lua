-- seat_logout: an operator logs out. A call ringing at the seat goes back to the head
-- of the queue. A seat in conversation cannot log out, unless forced by a supervisor
-- (the seat is stuck: its call's hang-up was lost): the call is then completed.
-- ARGV[5] seat id, [6] '1' to force, [7] who logs it out (kept on the seat as
-- 'logout_by', so its operator's console can say why). Returns {'ok', 'logged-out'|'forced'|
-- 'already-offline', ...offers} or {'err', 'seat-busy'}.
local seat, force, by = ARGV[5], ARGV[6] == '1', ARGV[7] or ''
local state = seat_state(seat)
if state == 'offline' then return {'ok', 'already-offline'} end
local result = 'logged-out'
if state == 'on_call' then
  if not force then return {'err', 'seat-busy'} end
  local call = redis.call('HGET', P_SEAT .. seat, 'call')
  local ckey = P_CALL .. (call or '')
  local cstate, answered_at = unpack(redis.call('HMGET', ckey, 'state', 'answered_at'))
  if cstate == 'on_call' then
    local talk_ms = NOW - tonumber(answered_at)
    end_call(call, 'completed')
    emit('COMPLETE', 'call', call, 'seat', seat, 'by', 'supervisor', 'talk_ms', talk_ms)
  end
  set_seat_state(seat, 'paused', 'forced logout')
  result = 'forced'
end
redis.call('HSET', P_SEAT .. seat, 'logout_by', by)
-- Its tasks (online requests) go back to the line in the same transition, so that the
-- next operator on this seat never finds the last one's. Their keys share the queue's
-- prefix (queueing/keys.py: tasks:*, task:, seat-tasks:), read off the events key.
local TQ = string.sub(K_EVENTS, 1, #K_EVENTS - #'events')
for _, task in ipairs(redis.call('SMEMBERS', TQ .. 'seat-tasks:' .. seat)) do
  local tkey = TQ .. 'task:' .. task
  local entered = redis.call('HGET', tkey, 'entered')
  if entered then
    redis.call('ZREM', TQ .. 'tasks:offers', task)
    redis.call('HSET', tkey, 'state', 'waiting', 'seat', '', 'owner', '')
    redis.call('ZADD', TQ .. 'tasks:waiting', entered, task)
    emit('TASK_RETURNED', 'task', task, 'seat', seat, 'reason', 'seat offline')
  end
end
redis.call('DEL', TQ .. 'seat-tasks:' .. seat)
redis.call('HDEL', TQ .. 'tasks:offered-to', seat)
redis.call('SREM', TQ .. 'tasks:seats', seat)
redis.call('HDEL', P_SEAT .. seat, 'task_handed_on')
logout(seat, result == 'forced' and 'forced logout' or 'logout')
return try_match(1, {'ok', result})
