-- seat_logout: an operator logs out. A call ringing at the seat goes back to the head
-- of the queue; a seat in conversation cannot log out. ARGV[5] seat id.
local seat = ARGV[5]
local state = seat_state(seat)
if state == 'offline' then return {'ok', 'already-offline'} end
if state == 'on_call' then return {'err', 'seat-busy'} end
logout(seat, 'logout')
return try_match(1, {'ok', 'logged-out'})
