-- wrapup_extend: more time to finish the case form. ARGV[5] seat id, [6] extra ms.
-- Returns {'ok', new end of wrap-up in ms}.
local seat, extra = ARGV[5], tonumber(ARGV[6])
if seat_state(seat) ~= 'wrap_up' then return {'err', 'not-in-wrap-up'} end
local ends = tonumber(redis.call('ZSCORE', K_WRAPUPS, seat) or NOW)
ends = math.max(ends, NOW) + extra
redis.call('ZADD', K_WRAPUPS, ends, seat)
emit('WRAPUP_EXTENDED', 'seat', seat, 'until', ends)
return {'ok', tostring(ends)}
