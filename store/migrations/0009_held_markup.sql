-- Schema version 9: the markup of a held IM that carries styles (bold,
-- italic, underline), so that it shows them when it is delivered from the
-- store, after a restart too, as it would have live ('' for an IM shown
-- as its text, and for IMs held before).
ALTER TABLE held_ims ADD COLUMN markup TEXT NOT NULL DEFAULT '';
