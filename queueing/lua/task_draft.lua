-- task_draft: the reply the seat's operator is writing, saved by the console while they
-- type (at most every few seconds, and when they leave the box). It is kept on the
-- task, so a request handed on takes it to the next operator, and it is the sign that
-- the operator is present: a free seat's request is handed on HAND_ON_MS after the
-- latest of its take, the seat's last call and its last draft (task_tick.lua).
-- ARGV[9] task, [10] seat, [11] the draft, [12] its longest in bytes.
-- Returns {'ok', 'saved'} or an error (a task no longer this seat's: not-your-task).
local task, seat, draft, max_bytes = ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12])
local _, err = task_of_seat(task, seat, 'held')
if err then return err end
if #draft > max_bytes then return {'err', 'draft-too-long'} end
redis.call('HSET', P_TASK .. task, 'draft', draft, 'drafted_at', NOW,
           'drafted_by', seat_owner(seat))
return {'ok', 'saved'}
