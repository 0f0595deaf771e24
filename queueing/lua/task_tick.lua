-- task_tick: the reaper's sweep of the tasks, after the calls' own (calls first).
-- Lapsed offers and offers to seats no longer free (a call came, a pause) go back to
-- the line; the tasks of a seat gone offline too, and the unanswered ones of a seat on a
-- call or paused once half their time is gone (HAND_ON_MS), or of a free seat whose
-- operator has been silent for HAND_ON_MS (a seat left 'available' would keep them
-- forever); tasks past their first-response time are marked overdue (once). A free
-- seat whose operator is writing a first reply stays at the back of the calls' line.
-- Then the waiting tasks are offered.
-- ARGV[9] max items per kind. Returns {'ok', 'expired,returned,overdue', ...pairs}.
local limit = tonumber(ARGV[9])
local counts = {0, 0, 0}
for _, task in ipairs(redis.call('ZRANGEBYSCORE', K_T_OFFERS, '-inf', NOW, 'LIMIT', 0, limit)) do
  task_requeue(task, 'offer expired')
  counts[1] = counts[1] + 1
end
local offered = redis.call('HGETALL', K_T_OFFERED_TO)
for i = 1, #offered, 2 do
  if seat_state(offered[i]) ~= 'available' then
    task_requeue(offered[i + 1], 'seat busy')
    counts[2] = counts[2] + 1
  end
end
for _, seat in ipairs(redis.call('SMEMBERS', K_T_SEATS)) do
  local state = seat_state(seat)
  if state == 'offline' then
    for _, task in ipairs(redis.call('SMEMBERS', P_SEAT_TASKS .. seat)) do
      task_requeue(task, 'seat offline')
      counts[2] = counts[2] + 1
    end
    redis.call('SREM', K_T_SEATS, seat)
  else
    for _, task in ipairs(redis.call('SMEMBERS', P_SEAT_TASKS .. seat)) do
      local tstate, responded, due, taken, drafted = unpack(redis.call(
        'HMGET', P_TASK .. task, 'state', 'responded_at', 'due', 'taken_at', 'drafted_at'))
      -- A free seat's operator is present while they take it, come back from a call or
      -- save a draft (their console does every few seconds while they type): silent for
      -- HAND_ON_MS since the latest of these, they are away, and the request goes on
      -- early enough for the next seat to answer in time, with the draft (a long reply
      -- being written is kept). A busy or paused seat's operator cannot reply at all.
      local due_now
      if state == 'available' then
        local since = tonumber(redis.call('HGET', P_SEAT .. seat, 'since') or NOW)
        local present = math.max(tonumber(taken or NOW), since, tonumber(drafted or 0))
        due_now = NOW - present >= HAND_ON_MS
      else
        due_now = tonumber(due) - NOW <= HAND_ON_MS
      end
      if tstate == 'held' and (not responded or responded == '') and due_now then
        task_hand_on(task, seat)
        counts[2] = counts[2] + 1
      end
    end
    -- Its operator is replying to a request: calls go to the other free seats first.
    if state == 'available' and (redis.call('HEXISTS', K_T_OFFERED_TO, seat) == 1
        or unanswered_held(seat) > 0) then
      to_back_of_call_line(seat)
    end
  end
end
local late = redis.call('ZRANGEBYSCORE', K_T_UNANSWERED, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, limit)
counts[3] = #late / 2
for i = 1, #late, 2 do
  redis.call('ZREM', K_T_UNANSWERED, late[i])
  redis.call('ZADD', K_T_OVERDUE, late[i + 1], late[i])
  emit('TASK_OVERDUE', 'task', late[i])
end
return offer_tasks(limit, {'ok', table.concat(counts, ',')})
