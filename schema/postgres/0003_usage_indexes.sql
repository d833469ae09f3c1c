-- `report usage` reads a month of successful authentications and, for each mailbox
-- seen, the kind of its latest creation, as in SQLite's 0014_usage_indexes.sql: with
-- these indexes holding every column those queries read, they are answered by
-- index-only scans rather than a heap fetch per audit row and per mailbox. The partial
-- index leaves refusals out.
CREATE INDEX audit_success ON audit (at) INCLUDE (mechanism, mailbox, repeated)
    WHERE outcome = 'success';
DROP INDEX mailbox_events_created;
CREATE INDEX mailbox_events_created ON mailbox_events (address, at) INCLUDE (kind)
    WHERE event = 'created';
-- The counts by kind and event, already grouped.
CREATE INDEX mailbox_events_counts ON mailbox_events (kind, event, at);
