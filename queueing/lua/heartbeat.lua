-- heartbeat: an operator's console is alive. ARGV[4] seat id.
local seat = ARGV[4]
if seat_state(seat) == 'offline' then return {'err', 'not-logged-in'} end
redis.call('ZADD', K_HEARTBEATS, NOW, seat)
return {'ok', 'alive'}
