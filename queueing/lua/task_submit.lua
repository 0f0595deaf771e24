-- task_submit: a request filed as a case (web, sms, open311) joins the line.
-- ARGV[9] task id (the case number), [10] channel, [11] entered ms ('' for now: a
-- request put back from SQL keeps its time), [12] first response ms and [13] by whom
-- ('' for none: a request put back from SQL keeps its answer, so it is neither overdue
-- nor owed a second reply). Returns {'ok', 'queued'|'duplicate'|'done', ...task/seat
-- offer pairs}.
local task, channel, entered = ARGV[9], ARGV[10], tonumber(ARGV[11]) or NOW
local responded, responded_by = tonumber(ARGV[12] or ''), ARGV[13] or ''
local tkey = P_TASK .. task
local state = redis.call('HGET', tkey, 'state')
if state == 'done' then return {'ok', 'done'} end
if state then return {'ok', 'duplicate'} end
redis.call('HSET', tkey, 'state', 'waiting', 'channel', channel, 'entered', entered,
           'due', entered + FIRST_RESPONSE_MS, 'seat', '', 'owner', '', 'offers', 0)
redis.call('ZADD', K_T_WAITING, entered, task)
redis.call('ZADD', K_T_LIVE, entered, task)
if responded then
  redis.call('HSET', tkey, 'responded_at', responded, 'responded_by', responded_by,
             'response_ms', responded - entered)
else
  redis.call('ZADD', K_T_UNANSWERED, entered + FIRST_RESPONSE_MS, task)
end
emit('TASK_QUEUED', 'task', task, 'channel', channel)
return offer_tasks(1, {'ok', 'queued'})
