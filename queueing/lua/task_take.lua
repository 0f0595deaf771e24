-- task_take: the seat's operator takes the task offered to it; it is theirs until done.
-- ARGV[9] task, [10] seat. Returns {'ok', 'taken'|'duplicate', ...offers} or an error.
local task, seat = ARGV[9], ARGV[10]
local state, err = task_of_seat(task, seat, nil)
if err then return err end
if state == 'held' then return {'ok', 'duplicate'} end
redis.call('ZREM', K_T_OFFERS, task)
redis.call('HDEL', K_T_OFFERED_TO, seat)
redis.call('HDEL', P_SEAT .. seat, 'task_handed_on')  -- its console's notice is read
redis.call('HSET', P_TASK .. task, 'state', 'held', 'taken_at', NOW, 'owner', seat_owner(seat))
emit('TASK_TAKEN', 'task', task, 'seat', seat)
to_back_of_call_line(seat)
return offer_tasks(1, {'ok', 'taken'})
