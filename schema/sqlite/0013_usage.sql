-- Durable records for the monthly usage figures (`mssante report usage`), which must be
-- right for any past month: what happened to each mailbox and when (a deleted mailbox
-- leaves no row in `mailboxes`), and the mail carried, counted by day (UTC).
CREATE TABLE mailbox_events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    address TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    event   TEXT    NOT NULL CHECK (event IN ('created', 'deleted', 'published', 'unpublished'))
);
CREATE INDEX mailbox_events_at ON mailbox_events (at);
-- The kind of the mailbox an audit row names.
CREATE INDEX mailbox_events_created ON mailbox_events (address, at) WHERE event = 'created';

-- Mailboxes older than this table: their creation is known; when they were published is
-- not, and is left out rather than guessed.
INSERT INTO mailbox_events (at, address, kind, event)
    SELECT created_at, address, kind, 'created' FROM mailboxes;

CREATE TABLE traffic (
    -- Unix time of the day's 00:00 UTC
    day       INTEGER PRIMARY KEY,
    -- messages accepted on submission (465/587)
    submitted INTEGER NOT NULL DEFAULT 0,
    -- messages accepted from other operators (25)
    received  INTEGER NOT NULL DEFAULT 0,
    -- recipients another operator's server accepted
    relayed   INTEGER NOT NULL DEFAULT 0,
    -- copies filed in local inboxes
    delivered INTEGER NOT NULL DEFAULT 0,
    -- recipients given up on
    bounced   INTEGER NOT NULL DEFAULT 0
);
