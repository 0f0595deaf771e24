-- task_release: the operator declines an offered task or puts a held one back.
-- ARGV[9] task, [10] seat, [11] reason. Returns {'ok', 'returned', ...offers}.
local task, seat, reason = ARGV[9], ARGV[10], ARGV[11]
local _, err = task_of_seat(task, seat, nil)
if err then return err end
task_requeue(task, reason)
return offer_tasks(2, {'ok', 'returned'})
