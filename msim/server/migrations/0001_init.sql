-- msimd schema version 1: the MSIM network's accounts, contact lists and
-- offline IMs. Written once for both engines: {{id}} is an auto-numbered
-- 64-bit primary key whose numbers are never reused, {{bytes}} a byte
-- string (see internal/sqldb). Every table's name starts with msim_, so the
-- network can share a PostgreSQL database with msimircd's own store.
-- Times are Unix microseconds (UTC).
-- A released migration is never edited: a change is a new numbered file.

-- Values the store keeps about itself: key_check, a value sealed under the
-- key file, which tells at start whether the key is the database's.
CREATE TABLE msim_meta (
	name TEXT PRIMARY KEY,
	value {{bytes}} NOT NULL
);

-- Counters: next_uid, the uid the next account made without one gets
-- (taken ones are skipped).
CREATE TABLE msim_counters (
	name TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);

-- email_key and name_key are the lower-cased e-mail address and user name
-- (name_key NULL while the account has none): uniqueness is
-- case-insensitive. sealed_hash is the password's login hash sealed with
-- XChaCha20-Poly1305 under the key file, bound to the uid; never in clear.
-- data is the rest of the account as JSON (display name, profile, IM
-- preferences, groups, block and allow lists, privacy flags, last login).
CREATE TABLE msim_accounts (
	uid BIGINT PRIMARY KEY,
	email TEXT NOT NULL,
	email_key TEXT NOT NULL CONSTRAINT msim_accounts_email_key UNIQUE,
	user_name TEXT NOT NULL,
	name_key TEXT CONSTRAINT msim_accounts_name_key UNIQUE,
	sealed_hash {{bytes}} NOT NULL,
	data TEXT NOT NULL
);

-- One entry of an account's contact list. Names are bytes: clients send
-- any.
CREATE TABLE msim_contacts (
	owner BIGINT NOT NULL REFERENCES msim_accounts (uid) ON DELETE CASCADE,
	uid BIGINT NOT NULL,
	group_name {{bytes}} NOT NULL,
	position BIGINT NOT NULL,
	visibility BIGINT NOT NULL,
	nick_name {{bytes}} NOT NULL,
	name_select BIGINT NOT NULL,
	PRIMARY KEY (owner, uid)
);

-- IMs stored for a recipient who was offline, oldest first by id. size is
-- the body's length in bytes, what the offline limits count.
CREATE TABLE msim_offline (
	id {{id}},
	recipient BIGINT NOT NULL REFERENCES msim_accounts (uid) ON DELETE CASCADE,
	sender BIGINT NOT NULL,
	sent BIGINT NOT NULL,
	cv BIGINT NOT NULL,
	body {{bytes}} NOT NULL,
	size BIGINT NOT NULL
);
CREATE INDEX msim_offline_recipient ON msim_offline (recipient, id);
