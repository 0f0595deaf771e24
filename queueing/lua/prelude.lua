-- Shared head of every queue script. Python prepends it to each transition script.
--
-- KEYS, identical for every script (queueing/keys.py QueueKeys.script_keys):
--   1 events stream        2 offers zset (call -> lease deadline ms)
--   3 sticky zset (call -> end of sticky window ms)
--   4 wrapups zset (seat -> end of wrap-up ms)   5 heartbeats zset (seat -> last ms)
--   6 live calls zset (call -> entered ms)      7 skills set   8 stats hash
--   9 call key prefix   10 seat key prefix   11 waiting prefix (zset per skill)
--   12 available prefix (zset per skill: seat -> idle since ms)
--   13 staffed prefix (set per skill)   14 offer pub/sub channel
--   15 sticky-by-seat prefix (zset per seat: its sticky calls -> queue score)
--   16 working prefix (set per skill: seats available, offered, on a call or in wrap-up)
-- ARGV[1..4], identical for every script: ring lease ms (from the moment the seat rings),
-- wrap-up ms, events maxlen, offer start ms (how long an offered call may take to start
-- ringing its seat: a prompt may still be playing). A script's own arguments start at
-- ARGV[5].
--
-- Time is Redis server time, so every process shares one clock.
-- Scripts validate before they write: Lua has no rollback.

local K_EVENTS, K_OFFERS, K_STICKY, K_WRAPUPS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_HEARTBEATS, K_LIVE, K_SKILLS, K_STATS = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local P_CALL, P_SEAT, P_WAITING, P_AVAILABLE = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local P_STAFFED, CH_OFFERS = KEYS[13], KEYS[14]
local P_STICKY_SEAT = KEYS[15]
local P_WORKING = KEYS[16]

local OFFER_MS = tonumber(ARGV[1])
local WRAPUP_MS = tonumber(ARGV[2])
local EVENTS_MAXLEN = ARGV[3]
local OFFER_START_MS = tonumber(ARGV[4])
local ENDED_TTL_S = 86400  -- ended calls linger a day for late webhooks, then expire

local _t = redis.call('TIME')
local NOW = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local NOW_US = tonumber(_t[1]) * 1000000 + tonumber(_t[2])

-- Strictly increasing entry times (microseconds, exact in a double): two calls never
-- tie, so order within a class is arrival order and positions are distinct.
local function next_entry_us()
  local last = tonumber(redis.call('HGET', K_STATS, 'last_entry_us') or '0')
  local entry = math.max(NOW_US, last + 1)
  redis.call('HSET', K_STATS, 'last_entry_us', string.format('%d', entry))
  return entry
end

-- The events stream holds callers' numbers, so it keeps the current and the previous
-- Beijing day (UTC+8 all year) and no more: the day's first event trims what is older
-- (exactly: nothing of an older day lingers) and has the stream expire at the end of
-- the next day, should nothing follow. That expiry marks the day as done: every later
-- script that day reads it (one PEXPIRETIME) and neither trims nor writes the expiry
-- again, which would cost each transition two more commands and an AOF entry. A stream
-- deleted or re-created has no expiry, so it is trimmed again.
local DAY_MS, BEIJING_MS = 86400000, 8 * 3600000
local stream_kept = false

local function keep_two_days()
  stream_kept = true
  local today = math.floor((NOW + BEIJING_MS) / DAY_MS) * DAY_MS - BEIJING_MS
  local expires = today + 2 * DAY_MS
  if redis.call('PEXPIRETIME', K_EVENTS) == expires then return end
  redis.call('XTRIM', K_EVENTS, 'MINID', string.format('%d', today - DAY_MS))
  redis.call('PEXPIREAT', K_EVENTS, string.format('%d', expires))
end

local function emit(kind, ...)
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', kind, 'ts', NOW, ...)
  if not stream_kept then keep_two_days() end
end

local function split(csv)
  local out = {}
  for part in string.gmatch(csv or '', '[^,]+') do out[#out + 1] = part end
  return out
end

local function seat_state(seat)
  return redis.call('HGET', P_SEAT .. seat, 'state') or 'offline'
end

-- A seat's skills, read once per script: a transition asks for them several times
-- (leaving the pools, the working sets, the offer that follows). Only seat_login
-- changes them, and it calls forget_skills.
local skills_of = {}

local function seat_skills(seat)
  local skills = skills_of[seat]
  if not skills then
    skills = split(redis.call('HGET', P_SEAT .. seat, 'skills'))
    skills_of[seat] = skills
  end
  return skills
end

local function forget_skills(seat)
  skills_of[seat] = nil
end

-- The operator logged in at the seat ('' for none), read with its skills in one call.
local function seat_owner(seat)
  local owner, skills = unpack(redis.call('HMGET', P_SEAT .. seat, 'owner', 'skills'))
  if not skills_of[seat] then skills_of[seat] = split(skills) end
  return owner or ''
end

-- Seats that take calls, per skill, for the estimated wait: paused and offline seats
-- are not working. Kept here, where every seat state change passes.
local function mark_working(seat, state)
  local working = state ~= 'paused' and state ~= 'offline'
  for _, skill in ipairs(seat_skills(seat)) do
    redis.call(working and 'SADD' or 'SREM', P_WORKING .. skill, seat)
  end
end

local function set_seat_state(seat, state, reason, call)
  redis.call('HSET', P_SEAT .. seat, 'state', state, 'since', NOW,
             'reason', reason or '', 'call', call or '')
  mark_working(seat, state)
  emit('SEAT_STATE', 'seat', seat, 'state', state, 'reason', reason or '')
end

local function leave_available(seat)
  for _, skill in ipairs(seat_skills(seat)) do
    redis.call('ZREM', P_AVAILABLE .. skill, seat)
  end
end

local function queue_position(skill, score)
  return redis.call('ZCOUNT', P_WAITING .. skill, '-inf', '(' .. score) + 1
end

-- Offer a call to a seat: both leave their pools and a lease starts. The lease first
-- covers the adapter starting to ring the seat; ringing re-arms it for the ring time
-- (ringing.lua), so a prompt that plays on never eats the operator's ring time.
local function offer(call, seat)
  local ckey = P_CALL .. call
  local skill, entered = unpack(redis.call('HMGET', ckey, 'skill', 'entered'))
  redis.call('ZREM', P_WAITING .. skill, call)
  redis.call('ZREM', K_STICKY, call)
  local sticky_seat = redis.call('HGET', ckey, 'sticky_seat')
  if sticky_seat and sticky_seat ~= '' then
    redis.call('ZREM', P_STICKY_SEAT .. sticky_seat, call)
  end
  -- The operator logged in at the seat owns the call's pop and form (calls.desk).
  local owner = seat_owner(seat)
  leave_available(seat)
  redis.call('HSET', ckey, 'state', 'offered', 'seat', seat, 'offered_at', NOW, 'ringing_at', '',
             'seat_owner', owner)
  redis.call('HSET', P_SEAT .. seat, 'state', 'offered', 'since', NOW, 'reason', '', 'call', call)
  mark_working(seat, 'offered')
  redis.call('ZADD', K_OFFERS, NOW + OFFER_START_MS, call)
  emit('OFFER', 'call', call, 'seat', seat, 'skill', skill, 'wait_ms', NOW - tonumber(entered))
  redis.call('PUBLISH', CH_OFFERS, call .. ' ' .. seat)
  return {call, seat}
end

-- Seat becomes free: its own sticky caller first, else the pools of its skills.
local function make_available(seat, reason)
  redis.call('ZREM', K_WRAPUPS, seat)
  local mine = redis.call('ZRANGE', P_STICKY_SEAT .. seat, 0, 0)
  if mine[1] then
    emit('SEAT_STATE', 'seat', seat, 'state', 'available', 'reason', reason or '')
    return offer(mine[1], seat)
  end
  set_seat_state(seat, 'available', reason)
  for _, skill in ipairs(seat_skills(seat)) do
    redis.call('ZADD', P_AVAILABLE .. skill, NOW, seat)
  end
  return nil
end

-- A seat's call and wrap-up are over: available, or paused if its operator asked to
-- pause after this call (the reason they chose).
local function after_call(seat, reason)
  local pause_next = redis.call('HGET', P_SEAT .. seat, 'pause_next')
  if pause_next and pause_next ~= '' then
    redis.call('ZREM', K_WRAPUPS, seat)
    redis.call('HDEL', P_SEAT .. seat, 'pause_next')
    set_seat_state(seat, 'paused', pause_next)
    return nil
  end
  return make_available(seat, reason)
end

-- Put an offered or sticky call back at the head of its class: its original score.
-- It loses any sticky claim, so the next free seat with the skill takes it.
local function requeue(call)
  local ckey = P_CALL .. call
  local skill, score, sticky_seat = unpack(redis.call('HMGET', ckey, 'skill', 'score', 'sticky_seat'))
  if sticky_seat and sticky_seat ~= '' then
    redis.call('ZREM', P_STICKY_SEAT .. sticky_seat, call)
  end
  redis.call('ZREM', K_STICKY, call)
  redis.call('ZREM', K_OFFERS, call)
  redis.call('HSET', ckey, 'state', 'waiting', 'seat', '', 'sticky_seat', '')
  redis.call('ZADD', P_WAITING .. skill, score, call)
end

-- A waiting call leaves the line (hang-up, callback, expiry). Returns its position.
local function take_out_of_line(call)
  local skill, score, sticky_seat = unpack(redis.call(
    'HMGET', P_CALL .. call, 'skill', 'score', 'sticky_seat'))
  if sticky_seat and sticky_seat ~= '' then
    redis.call('ZREM', P_STICKY_SEAT .. sticky_seat, call)
    redis.call('ZREM', K_STICKY, call)
    return 1
  end
  local position = queue_position(skill, score)
  redis.call('ZREM', P_WAITING .. skill, call)
  return position
end

local function end_call(call, outcome)
  local ckey = P_CALL .. call
  redis.call('HSET', ckey, 'state', 'ended', 'outcome', outcome, 'ended_at', NOW)
  redis.call('ZREM', K_LIVE, call)
  redis.call('ZREM', K_OFFERS, call)
  redis.call('EXPIRE', ckey, ENDED_TTL_S)
end

-- Pair the oldest-scored waiting call with the longest-idle seat of its skill, repeatedly.
local function try_match(limit, out)
  local skills = redis.call('SMEMBERS', K_SKILLS)
  for _ = 1, limit do
    local best_call, best_score, best_skill
    for _, skill in ipairs(skills) do
      if redis.call('EXISTS', P_AVAILABLE .. skill) == 1 then
        local head = redis.call('ZRANGE', P_WAITING .. skill, 0, 0, 'WITHSCORES')
        if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
          best_call, best_score, best_skill = head[1], tonumber(head[2]), skill
        end
      end
    end
    if not best_call then break end
    local seat = redis.call('ZRANGE', P_AVAILABLE .. best_skill, 0, 0)[1]
    local pair = offer(best_call, seat)
    out[#out + 1] = pair[1]
    out[#out + 1] = pair[2]
  end
  return out
end

local function add_pair(out, pair)
  if pair then
    out[#out + 1] = pair[1]
    out[#out + 1] = pair[2]
  end
  return out
end

-- After a conversation: update the handle-time average, then wrap-up or available.
local function finish_seat(seat, call, talk_ms, out)
  -- Exponentially weighted, so the estimate follows the recent handle times.
  local aht = tonumber(redis.call('HGET', K_STATS, 'aht_ms'))
  local handle = talk_ms + WRAPUP_MS
  if aht then aht = aht * 0.9 + handle * 0.1 else aht = handle end
  redis.call('HSET', K_STATS, 'aht_ms', math.floor(aht))
  -- The seat may have been taken offline (heartbeat lost) while its call went on.
  if seat_state(seat) ~= 'on_call' or redis.call('HGET', P_SEAT .. seat, 'call') ~= call then
    return out
  end
  if WRAPUP_MS > 0 then
    redis.call('ZADD', K_WRAPUPS, NOW + WRAPUP_MS, seat)
    set_seat_state(seat, 'wrap_up', '', call)
    return out
  end
  add_pair(out, after_call(seat, ''))
  return try_match(1, out)
end

-- Take back whatever a seat held when it stops being offered (logout, pause, lost).
local function release_offer(seat, reason)
  local call = redis.call('HGET', P_SEAT .. seat, 'call')
  if seat_state(seat) == 'offered' and call and call ~= '' then
    requeue(call)
    emit('RINGNOANSWER', 'call', call, 'seat', seat, 'reason', reason)
  end
end

-- Nobody logged in has this skill any more: its waiting callers go to the fallback
-- skill with their entry times, rather than wait for an operator who is not there.
local function rehome_if_unstaffed(skill)
  local fallback = redis.call('HGET', K_STATS, 'fallback_skill')
  if not fallback or skill == fallback or redis.call('EXISTS', P_STAFFED .. skill) == 1 then
    return
  end
  local waiting = redis.call('ZRANGE', P_WAITING .. skill, 0, -1, 'WITHSCORES')
  for i = 1, #waiting, 2 do
    local call = waiting[i]
    redis.call('ZADD', P_WAITING .. fallback, waiting[i + 1], call)
    redis.call('HSET', P_CALL .. call, 'skill', fallback)
    emit('SKILL', 'call', call, 'skill', fallback, 'requested', skill, 'reason', 'unstaffed')
  end
  redis.call('DEL', P_WAITING .. skill)
end

local function logout(seat, reason)
  release_offer(seat, reason)
  leave_available(seat)
  for _, skill in ipairs(seat_skills(seat)) do
    redis.call('SREM', P_STAFFED .. skill, seat)
    rehome_if_unstaffed(skill)
  end
  redis.call('ZREM', K_WRAPUPS, seat)
  redis.call('ZREM', K_HEARTBEATS, seat)
  if redis.call('ZCARD', K_HEARTBEATS) == 0 then  -- the last seat: closing starts to count
    redis.call('HSET', K_STATS, 'unstaffed_since', NOW)
  end
  -- Its sticky callers need not wait for an operator who has gone.
  for _, call in ipairs(redis.call('ZRANGE', P_STICKY_SEAT .. seat, 0, -1)) do
    requeue(call)
  end
  -- A call still in progress keeps its record; only the seat goes offline.
  local keep_call = ''
  if seat_state(seat) == 'on_call' then keep_call = redis.call('HGET', P_SEAT .. seat, 'call') end
  set_seat_state(seat, 'offline', reason, keep_call)
end
