-- Schema version 4: which msimircd instance serves each user, when several
-- instances share one database (see leases.go). Same conventions as 0001.

-- One row per user name that was ever leased (stored or not: a session of
-- a nick without a password has a lease too). instance is '' once the
-- lease is released; epoch rises at every acquisition and never falls, so
-- it names one holder's tenure; expires is Unix microseconds by the
-- database's clock.
CREATE TABLE leases (
	name TEXT PRIMARY KEY,
	instance TEXT NOT NULL,
	epoch BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX leases_by_instance ON leases (instance);
