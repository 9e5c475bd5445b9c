-- Schema version 5: one index fewer for every history append. Entries by
-- (user, time) served only the hourly prune, which now walks a user's
-- entries by id (history_by_user_id): a user's entries are capped, and
-- the walk runs once an hour, while the index cost every IM in and out.
DROP INDEX history_by_user_time;
