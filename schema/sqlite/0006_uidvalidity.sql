-- The last UIDVALIDITY handed out, for the whole store. A new folder takes
-- max(now in seconds, last + 1): a folder deleted and created again under the same name,
-- however fast, never shows a client an earlier UIDVALIDITY with UIDs starting again at 1
-- (RFC 3501 §2.3.1.1), nor does a mailbox deleted and created again under its address.
CREATE TABLE uidvalidity_issued (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);

INSERT INTO uidvalidity_issued (id, last) SELECT 1, COALESCE(MAX(uidvalidity), 0) FROM folders;
