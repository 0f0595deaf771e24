-- turn_away: a caller was told the centre is closed and offered a callback; they never
-- entered the queue. Recorded so the figures count them as calls that wanted a person.
-- ARGV[5] call id, [6] caller, [7] reason. Returns {'ok', 'recorded'}.
emit('TURNED_AWAY', 'call', ARGV[5], 'caller', ARGV[6], 'reason', ARGV[7])
return {'ok', 'recorded'}
