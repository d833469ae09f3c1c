-- What SORT and THREAD read of a message's header, so that ordering a large folder reads
-- these short columns rather than every header again. A row belongs to a body (the keys
-- come from its bytes, whatever folder holds it) and is written the first time a SORT
-- or THREAD needs it: bodies stored before this table, or by older code, have none yet
-- and are computed then, from the same header, by the same rules.
CREATE TABLE sort_keys (
    body_id      INTEGER PRIMARY KEY REFERENCES bodies (id) ON DELETE CASCADE,
    -- the rules that computed the row: rows from older rules are computed again
    version      INTEGER NOT NULL,
    -- Unix seconds UTC from `Date:`; NULL when unreadable (INTERNALDATE stands in, and
    -- that belongs to each message, not to the body)
    sent         INTEGER,
    subject      TEXT    NOT NULL,
    reply        INTEGER NOT NULL,
    from_mailbox TEXT    NOT NULL,
    to_mailbox   TEXT    NOT NULL,
    cc_mailbox   TEXT    NOT NULL,
    display_from TEXT    NOT NULL,
    display_to   TEXT    NOT NULL,
    message_id   TEXT,
    -- References (or In-Reply-To), oldest first, separated by spaces
    refs         TEXT    NOT NULL
) WITHOUT ROWID;
