-- Schema version 7: the IRCv3 msgid a queued IM was typed with, so that
-- once it is sent its history entry has the msgid the user's other
-- clients were shown, also after a restart ('' for IMs queued before:
-- they get a new one).
ALTER TABLE queued_ims ADD COLUMN msgid TEXT NOT NULL DEFAULT '';
