-- Schema version 8: failed logins counted per account name (the key the
-- gateway's guessing limits use), so that the delays they call for hold
-- across restarts and across the instances sharing the database. last is
-- Unix microseconds; a row whose last failure is older than the caller's
-- window counts as none and is deleted at the next failure counted.
CREATE TABLE login_failures (
	name TEXT PRIMARY KEY,
	failures BIGINT NOT NULL,
	last BIGINT NOT NULL
);
CREATE INDEX login_failures_by_last ON login_failures (last);
