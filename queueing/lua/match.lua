-- match: pair waiting calls with free seats until none fit. ARGV[4] max pairs.
return try_match(tonumber(ARGV[4]), {'ok', 'matched'})
