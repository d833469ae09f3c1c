-- Mailbox lifecycle (Référentiel #1): notices already sent, the run lease, and indexes
-- that keep each job a range scan over the few mailboxes whose state must change.

-- A notice sent to a mailbox's holder. `cycle` is the last-activity instant the notice
-- is about (COALESCE(last_authenticated_at, created_at), Unix seconds): an
-- authentication starts a new cycle, so the next inactivity period is warned again,
-- while the primary key makes each notice of one cycle happen at most once.
CREATE TABLE lifecycle_notices (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    -- 'deletion-warning:<seconds before deletion>' or 'existing-mailboxes'
    kind       TEXT    NOT NULL,
    cycle      INTEGER NOT NULL,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, kind, cycle)
) WITHOUT ROWID;

-- Who runs the lifecycle jobs right now: the scheduler of any `serve` process or a
-- `jobs run`, possibly in another process on the same database. A run takes the lease,
-- renews it while it works and gives it back; a crashed holder's lease just expires.
CREATE TABLE lifecycle_lease (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Published mailboxes by last activity: the unpublish job reads only the due range.
CREATE INDEX mailboxes_published_activity
    ON mailboxes (COALESCE(last_authenticated_at, created_at)) WHERE published = 1;
-- Mailboxes that may be published: the publish job never reads the published ones.
CREATE INDEX mailboxes_unpublished_activity
    ON mailboxes (COALESCE(last_authenticated_at, created_at)) WHERE published = 0 AND red_list = 0;
-- The same by kind and age: unpublished mailboxes that are young or applicative (which
-- inactivity does not keep out of the directory).
CREATE INDEX mailboxes_unpublished_kind_created
    ON mailboxes (kind, created_at) WHERE published = 0 AND red_list = 0;
-- Red-listed mailboxes that are still in the directory (red-listed after publication).
CREATE INDEX mailboxes_red_listed_published ON mailboxes (id) WHERE published = 1 AND red_list = 1;
-- Deleting a mailbox cascades to its grants; the grant indexes are partial, so the
-- cascade needs a plain one or it scans the table once per deleted mailbox.
CREATE INDEX grants_mailbox ON grants (mailbox_id);
