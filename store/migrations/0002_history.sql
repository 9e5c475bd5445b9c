-- Schema version 2: history of every IM, /me and zap in and out, read
-- markers and per-client positions (see history.go). Same conventions as
-- 0001: {{id}} an auto-numbered key never reused, times Unix microseconds.

-- One row per IM, /me or zap. user_id repeats the account's user so the
-- user-wide queries (by id, by time) have an index of their own. sent is
-- kept to the millisecond (a multiple of 1000).
CREATE TABLE history (
	id {{id}},
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	buddy BIGINT NOT NULL,
	msgid TEXT NOT NULL,
	sent BIGINT NOT NULL,
	outgoing BOOLEAN NOT NULL,
	kind TEXT NOT NULL,
	text TEXT NOT NULL,
	UNIQUE (user_id, msgid)
);
-- One conversation in time order (History, read marker checks).
CREATE INDEX history_by_conversation ON history (account_id, buddy, sent, id);
-- A user's entries by position (HistorySince, the per-user cap).
CREATE INDEX history_by_user_id ON history (user_id, id);
-- A user's entries by time (PruneHistory).
CREATE INDEX history_by_user_time ON history (user_id, sent);

-- Per user: how many history rows they have (kept exact by the store, so
-- the cap needs no count) and the last id appended (kept when that row is
-- deleted). Appends lock this row first, so a user's ids become visible in
-- increasing order.
CREATE TABLE history_users (
	user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	entries BIGINT NOT NULL,
	last_id BIGINT NOT NULL
);

-- Every conversation with history, and the time of its newest entry as
-- appended (an upper bound once entries are deleted): HistoryTargets probes
-- these rather than reading all of a user's entries. PruneHistory drops
-- those left without entries.
CREATE TABLE history_conversations (
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	buddy BIGINT NOT NULL,
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	latest BIGINT NOT NULL,
	PRIMARY KEY (account_id, buddy)
);
CREATE INDEX history_conversations_by_user ON history_conversations (user_id, latest);

-- draft/read-marker: per conversation, only moving forward.
CREATE TABLE read_markers (
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	buddy BIGINT NOT NULL,
	marked BIGINT NOT NULL,
	PRIMARY KEY (account_id, buddy)
);

-- What each of a user's clients (by the name it gave, "" if none) has
-- been sent: a history id, only moving forward. updated: when last set.
CREATE TABLE client_positions (
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	client TEXT NOT NULL,
	position BIGINT NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (user_id, client)
);
