-- task_unrespond: undo a first response whose reply SQL did not keep (calls/tasks.py
-- TaskDesk.reply), so that the figures never count a reply the case does not have and
-- the operator can send it again.
-- ARGV[9] task, [10] seat, [11] the response ms it set. Returns {'ok', 'undone'|'kept'}.
local task, seat, at = ARGV[9], ARGV[10], ARGV[11]
local tkey = P_TASK .. task
local response_ms, due = unpack(redis.call('HMGET', tkey, 'response_ms', 'due'))
if not response_ms or response_ms ~= at then return {'ok', 'kept'} end
redis.call('HDEL', tkey, 'responded_at', 'responded_by', 'response_ms')
if tonumber(due) <= NOW then
  redis.call('ZADD', K_T_OVERDUE, due, task)
else
  redis.call('ZADD', K_T_UNANSWERED, due, task)
end
emit('TASK_RESPONSE_UNDONE', 'task', task, 'seat', seat)
return {'ok', 'undone'}
