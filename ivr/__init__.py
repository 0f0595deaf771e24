"""Call flows as pure logic (see README.md in this folder: no I/O here)."""
