-- The IRCv3 msgid a held IM has in the history, so that its replay and
-- CHATHISTORY show one message, not two ('' for IMs held before).
ALTER TABLE held_ims ADD COLUMN msgid TEXT NOT NULL DEFAULT '';
