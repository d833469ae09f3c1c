-- \Recent (RFC 3501 §2.3.2): a message is recent in exactly one session, the first to
-- learn of it. Every UID from `recent_from` on has been announced to no session yet;
-- a read-write session that learns of messages moves it past them.
ALTER TABLE folders ADD COLUMN recent_from INTEGER NOT NULL DEFAULT 1;
-- What is already in a folder was seen before this existed: nothing becomes recent.
UPDATE folders SET recent_from = uidnext;
