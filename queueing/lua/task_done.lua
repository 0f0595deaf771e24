-- task_done: the operator completes a held task (replied, filed, dispatched).
-- ARGV[9] task, [10] seat. Returns {'ok', 'done', ...offers}.
local task, seat = ARGV[9], ARGV[10]
local _, err = task_of_seat(task, seat, 'held')
if err then return err end
first_response(task, seat)
local tkey = P_TASK .. task
redis.call('HSET', tkey, 'state', 'done', 'done_at', NOW)
redis.call('ZREM', K_T_LIVE, task)
redis.call('SREM', P_SEAT_TASKS .. seat, task)
if redis.call('EXISTS', P_SEAT_TASKS .. seat) == 0 then redis.call('SREM', K_T_SEATS, seat) end
redis.call('EXPIRE', tkey, TASK_DONE_TTL_S)
emit('TASK_DONE', 'task', task, 'seat', seat,
     'handle_ms', NOW - tonumber(redis.call('HGET', tkey, 'taken_at') or NOW))
return offer_tasks(1, {'ok', 'done'})
