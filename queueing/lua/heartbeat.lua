-- heartbeat: an operator's console is alive. ARGV[5] seat id.
local seat = ARGV[5]
if seat_state(seat) == 'offline' then return {'err', 'not-logged-in'} end
redis.call('ZADD', K_HEARTBEATS, NOW, seat)
return {'ok', 'alive'}
