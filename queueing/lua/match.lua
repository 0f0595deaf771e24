-- match: pair waiting calls with free seats until none fit. ARGV[5] max pairs.
return try_match(tonumber(ARGV[5]), {'ok', 'matched'})
