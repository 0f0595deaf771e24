"""The Asterisk adapter: a FastAGI server (and a plain AGI script) that runs the call
flows of ivr/, with callers holding in the dialplan and AMI moving them to their seat."""
