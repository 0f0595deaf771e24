-- Shared head of the task scripts (after prelude.lua): online, SMS and Open311
-- requests waiting as tasks in the same queue as the calls (calls/tasks.py).
--
-- KEYS 17.. (queueing/keys.py QueueKeys.task_script_keys):
--   17 waiting zset (task -> entered ms)   18 offers zset (task -> offer deadline ms)
--   19 live zset (task -> entered ms)      20 unanswered zset (task -> response due ms)
--   21 overdue zset (task -> response due ms, past it)
--   22 offered-to hash (seat -> the one task offered to it)
--   23 set of seats holding or offered tasks   24 task hash prefix
--   25 seat-tasks prefix (set per seat: its offered and held tasks)
-- The task arguments follow the common four: ARGV[5] task skill, [6] tasks a seat may
-- hold, [7] task offer lease ms, [8] first response ms. A script's own start at ARGV[9].
--
-- Calls first: a task is offered only to a seat that is available for calls (idle in
-- its skill's pool), and the offer leaves the seat in that pool, so a call that comes
-- is offered to it as if the task were not there. A task is offered to one seat at a
-- time (its state says to whom) and a seat has at most one task offer pending.

local K_T_WAITING, K_T_OFFERS, K_T_LIVE, K_T_UNANSWERED = KEYS[17], KEYS[18], KEYS[19], KEYS[20]
local K_T_OVERDUE, K_T_OFFERED_TO, K_T_SEATS = KEYS[21], KEYS[22], KEYS[23]
local P_TASK, P_SEAT_TASKS = KEYS[24], KEYS[25]

local TASK_SKILL = ARGV[5]
local TASK_CAPACITY = tonumber(ARGV[6])
local TASK_OFFER_MS = tonumber(ARGV[7])
local FIRST_RESPONSE_MS = tonumber(ARGV[8])
local TASK_DONE_TTL_S = 86400
-- A held task not yet answered is handed on to a free seat, so that the citizen is still
-- answered: from a seat on a call or paused once half its time is gone, and from a free
-- seat once half its time has passed since the latest of the take, the seat's last call
-- and the operator's last draft save (task_draft.lua: typing says they are there).
local HAND_ON_MS = FIRST_RESPONSE_MS / 2

-- Back to the line with its entry time (the oldest is offered first): from an offer
-- that lapsed or was declined, or from a seat that went away.
local function task_requeue(task, reason)
  local tkey = P_TASK .. task
  local seat, entered = unpack(redis.call('HMGET', tkey, 'seat', 'entered'))
  if seat and seat ~= '' then
    redis.call('SREM', P_SEAT_TASKS .. seat, task)
    if redis.call('HGET', K_T_OFFERED_TO, seat) == task then
      redis.call('HDEL', K_T_OFFERED_TO, seat)
    end
    if redis.call('EXISTS', P_SEAT_TASKS .. seat) == 0 then redis.call('SREM', K_T_SEATS, seat) end
  end
  redis.call('ZREM', K_T_OFFERS, task)
  redis.call('HSET', tkey, 'state', 'waiting', 'seat', '', 'owner', '')
  redis.call('ZADD', K_T_WAITING, entered, task)
  emit('TASK_RETURNED', 'task', task, 'seat', seat or '', 'reason', reason)
end

-- A held task whose reply is due handed on: the next offer avoids its seat while another
-- is free, and the seat's console is told (the seat's 'task_handed_on').
local function task_hand_on(task, seat)
  task_requeue(task, 'reply due')
  redis.call('HSET', P_TASK .. task, 'handed_from', seat)
  redis.call('HSET', P_SEAT .. seat, 'task_handed_on', task)
end

local function offer_task(task, seat)
  local tkey = P_TASK .. task
  local owner = seat_owner(seat)
  redis.call('ZREM', K_T_WAITING, task)
  redis.call('HSET', tkey, 'state', 'offered', 'seat', seat, 'owner', owner, 'offered_at', NOW)
  redis.call('HINCRBY', tkey, 'offers', 1)
  redis.call('ZADD', K_T_OFFERS, NOW + TASK_OFFER_MS, task)
  redis.call('SADD', P_SEAT_TASKS .. seat, task)
  redis.call('SADD', K_T_SEATS, seat)
  redis.call('HSET', K_T_OFFERED_TO, seat, task)
  emit('TASK_OFFER', 'task', task, 'seat', seat,
       'wait_ms', NOW - tonumber(redis.call('HGET', tkey, 'entered')))
end

-- The seat's operator is at work on a request: calls go to the seats idle longest, so
-- its place in its pools becomes the newest. A call still goes to it at once if no
-- other seat of the call's skill is free: calls are never kept waiting for a task.
local function to_back_of_call_line(seat)
  for _, skill in ipairs(seat_skills(seat)) do
    redis.call('ZADD', P_AVAILABLE .. skill, 'XX', NOW, seat)
  end
end

-- Tasks the seat holds that have no reply yet.
local function unanswered_held(seat)
  local n = 0
  for _, task in ipairs(redis.call('SMEMBERS', P_SEAT_TASKS .. seat)) do
    local state, responded = unpack(redis.call('HMGET', P_TASK .. task, 'state', 'responded_at'))
    if state == 'held' and (not responded or responded == '') then n = n + 1 end
  end
  return n
end

-- The oldest waiting tasks to the seats free for calls that have room,
-- no offer pending and no unanswered task in hand (one first response at a time: a
-- second would wait behind the first). Returns the pairs made.
local function offer_tasks(limit, out)
  if redis.call('ZCARD', K_T_WAITING) == 0 then return out end
  -- Newest idle first: calls go to the longest idle seat, so these are the seats a
  -- call reaches last, with the most time for a request.
  local seats = redis.call('ZREVRANGE', P_AVAILABLE .. TASK_SKILL, 0, -1)
  local i = 1
  for _ = 1, limit do
    local task = redis.call('ZRANGE', K_T_WAITING, 0, 0)[1]
    if not task then break end
    local avoid = redis.call('HGET', P_TASK .. task, 'handed_from')
    local seat, fallback
    while i <= #seats and not seat do
      local s = seats[i]
      i = i + 1
      if redis.call('HEXISTS', K_T_OFFERED_TO, s) == 0
          and redis.call('SCARD', P_SEAT_TASKS .. s) < TASK_CAPACITY
          and unanswered_held(s) == 0 then
        if s == avoid then fallback = s else seat = s end
      end
    end
    seat = seat or fallback  -- the seat it was handed on from, only if no other is free
    if not seat then break end
    offer_task(task, seat)
    out[#out + 1] = task
    out[#out + 1] = seat
  end
  return out
end

-- The task as the seat's: {state, ...} or nil with an error reply.
-- Its recorded owner too: the next operator on the same seat never works the last one's.
local function task_of_seat(task, seat, wanted)
  local state, holder, owner = unpack(redis.call('HMGET', P_TASK .. task, 'state', 'seat', 'owner'))
  if not state then return nil, {'err', 'no-such-task'} end
  if state == 'done' then return nil, {'err', 'task-done'} end
  if holder ~= seat or (owner or '') ~= seat_owner(seat) then
    return nil, {'err', 'not-your-task'}
  end
  if wanted and state ~= wanted then return nil, {'err', 'task-not-' .. wanted} end
  return state, nil
end

local function first_response(task, seat)
  local tkey = P_TASK .. task
  local responded, entered = unpack(redis.call('HMGET', tkey, 'responded_at', 'entered'))
  if responded and responded ~= '' then return nil end
  local response_ms = NOW - tonumber(entered)
  redis.call('HSET', tkey, 'responded_at', NOW, 'responded_by', seat_owner(seat),
             'response_ms', response_ms)
  redis.call('ZREM', K_T_UNANSWERED, task)
  redis.call('ZREM', K_T_OVERDUE, task)
  emit('TASK_RESPONSE', 'task', task, 'seat', seat, 'response_ms', response_ms)
  return response_ms
end
