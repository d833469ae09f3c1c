-- `report usage` reads a month of successful authentications and, for each mailbox
-- seen, the kind of its latest creation: with indexes that hold every column those
-- queries read, SQLite answers them from the indexes alone instead of fetching a table
-- row per audit row and per mailbox (a month of an operator's million mailboxes is
-- about a million audit rows). The partial index stays small: refusals are left out.
-- `outcome` is in it because SQLite uses an index as covering only when it holds every
-- column the query names.
CREATE INDEX audit_success ON audit (at, mechanism, mailbox, repeated, outcome)
    WHERE outcome = 'success';
DROP INDEX mailbox_events_created;
CREATE INDEX mailbox_events_created ON mailbox_events (address, at, kind, event)
    WHERE event = 'created';
-- The counts by kind and event, from the index alone and already grouped.
CREATE INDEX mailbox_events_counts ON mailbox_events (kind, event, at);
