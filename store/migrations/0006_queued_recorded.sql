-- Schema version 6: whether a queued IM is in the history already. The
-- bridge records an IM the user typed while the link was down once it is
-- sent; one the MSIM client took and never wrote, queued again, was
-- recorded when it was taken. Rows queued before this version were
-- recorded when queued.
ALTER TABLE queued_ims ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT TRUE;
