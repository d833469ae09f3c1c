-- Subscriptions are names, not folders (RFC 3501 §6.3.6): a name stays subscribed after
-- its folder is deleted or renamed, until the client unsubscribes it, and creating a
-- folder does not subscribe it.
CREATE TABLE subscriptions (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    PRIMARY KEY (mailbox_id, name)
) WITHOUT ROWID;
INSERT INTO subscriptions (mailbox_id, name)
    SELECT mailbox_id, name FROM folders WHERE subscribed = 1;
ALTER TABLE folders DROP COLUMN subscribed;
