"""The operator console at /ops: its own sign-in and cookie, read views and audited actions."""
