-- Schema version 1: the gateway's users, their MSIM accounts and what the
-- bridge keeps for them. Written once for both engines: {{id}} is an
-- auto-numbered 64-bit primary key whose numbers are never reused, {{bytes}}
-- a byte string (see dialect.go). Times are Unix microseconds (UTC).
-- A released migration is never edited: a change is a new numbered file.

-- Values the store keeps about itself, such as the key check.
CREATE TABLE meta (
	name TEXT PRIMARY KEY,
	value {{bytes}} NOT NULL
);

CREATE TABLE users (
	id {{id}},
	name TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created BIGINT NOT NULL
);

CREATE TABLE user_settings (
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (user_id, name)
);

-- password: the MSIM password sealed with XChaCha20-Poly1305 under the
-- key file, never in clear.
CREATE TABLE accounts (
	id {{id}},
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	email TEXT NOT NULL,
	password {{bytes}} NOT NULL,
	channel TEXT NOT NULL,
	autoconnect BOOLEAN NOT NULL,
	UNIQUE (user_id, email)
);

CREATE TABLE account_settings (
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
);

CREATE TABLE buddy_nicks (
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	uid BIGINT NOT NULL,
	nick TEXT NOT NULL,
	PRIMARY KEY (account_id, uid)
);

-- IMs and zaps (zap not NULL) held for a detached user, shown by seq.
CREATE TABLE held_ims (
	id {{id}},
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	seq BIGINT NOT NULL,
	sender BIGINT NOT NULL,
	text TEXT NOT NULL,
	sent BIGINT NOT NULL,
	offline BOOLEAN NOT NULL,
	zap INTEGER
);
CREATE INDEX held_ims_by_account ON held_ims (account_id, seq, id);

-- IMs the user typed while the link was down, sent in id order.
CREATE TABLE queued_ims (
	id {{id}},
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	recipient BIGINT NOT NULL,
	nick TEXT NOT NULL,
	text TEXT NOT NULL,
	typed BIGINT NOT NULL
);
CREATE INDEX queued_ims_by_account ON queued_ims (account_id, id);

CREATE TABLE notes (
	id {{id}},
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	text TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX notes_by_user ON notes (user_id, id);
