-- task_respond: the operator's reply reached the citizen: the first one is the task's
-- first response (GB/T 33358: within 3 minutes).
-- ARGV[9] task, [10] seat. Returns {'ok', 'first'|'again', response ms}.
local task, seat = ARGV[9], ARGV[10]
local _, err = task_of_seat(task, seat, 'held')
if err then return err end
local response_ms = first_response(task, seat)
to_back_of_call_line(seat)
if response_ms then return {'ok', 'first', response_ms} end
return {'ok', 'again', redis.call('HGET', P_TASK .. task, 'response_ms')}
