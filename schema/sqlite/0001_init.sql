-- Mailboxes (BAL), their access grants, folders, messages and the audit trail.
-- Times are Unix seconds (UTC): indexable, and free of time-zone parsing in SQL.

CREATE TABLE mailboxes (
    id                    INTEGER PRIMARY KEY,
    address               TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    kind                  TEXT    NOT NULL CHECK (kind IN ('personal', 'organisational', 'applicative')),
    owner_idnat           TEXT,
    display_name          TEXT,
    created_at            INTEGER NOT NULL,
    last_authenticated_at INTEGER,
    published             INTEGER NOT NULL DEFAULT 0,
    unpublished_at        INTEGER,
    -- directory fields (Annuaire Santé)
    description           TEXT,
    responsible           TEXT,
    service               TEXT,
    telephone             TEXT,
    dematerialisation     INTEGER NOT NULL DEFAULT 0,
    red_list              INTEGER NOT NULL DEFAULT 0,
    contact_address       TEXT,
    -- lifecycle
    hold                  INTEGER NOT NULL DEFAULT 0,
    deletion_warned_at    INTEGER,
    CHECK (kind <> 'personal' OR owner_idnat IS NOT NULL)
);
CREATE INDEX mailboxes_owner ON mailboxes (owner_idnat);
CREATE INDEX mailboxes_activity ON mailboxes (COALESCE(last_authenticated_at, created_at));

-- Who may open a mailbox besides its owner: an IdNat (organisational mailboxes), or a
-- certificate (applicative mailboxes) bound by subject+issuer or pinned by fingerprint.
CREATE TABLE grants (
    id               INTEGER PRIMARY KEY,
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    idnat            TEXT,
    cert_subject     TEXT,
    cert_issuer      TEXT,
    cert_fingerprint TEXT,
    created_at       INTEGER NOT NULL,
    CHECK ((idnat IS NOT NULL) + (cert_subject IS NOT NULL AND cert_issuer IS NOT NULL) + (cert_fingerprint IS NOT NULL) = 1)
);
CREATE UNIQUE INDEX grants_idnat ON grants (mailbox_id, idnat) WHERE idnat IS NOT NULL;
CREATE UNIQUE INDEX grants_subject ON grants (mailbox_id, cert_subject, cert_issuer) WHERE cert_subject IS NOT NULL;
CREATE UNIQUE INDEX grants_pin ON grants (mailbox_id, cert_fingerprint) WHERE cert_fingerprint IS NOT NULL;
CREATE INDEX grants_by_idnat ON grants (idnat) WHERE idnat IS NOT NULL;
CREATE INDEX grants_by_subject ON grants (cert_subject, cert_issuer) WHERE cert_subject IS NOT NULL;
CREATE INDEX grants_by_fingerprint ON grants (cert_fingerprint) WHERE cert_fingerprint IS NOT NULL;

CREATE TABLE folders (
    id            INTEGER PRIMARY KEY,
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    special_use   TEXT,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (mailbox_id, name)
);

-- Message bodies, stored once however many folders hold them.
CREATE TABLE bodies (
    id         INTEGER PRIMARY KEY,
    sha256     BLOB    NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    -- the header section and the rest, apart so header fetches never read bodies
    header     BLOB    NOT NULL,
    content    BLOB    NOT NULL
);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    folder_id     INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    -- \Seen=1 \Answered=2 \Flagged=4 \Deleted=8 \Draft=16
    system_flags  INTEGER NOT NULL DEFAULT 0,
    keywords      TEXT    NOT NULL DEFAULT '',
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    body_id       INTEGER NOT NULL REFERENCES bodies (id),
    -- parsed ENVELOPE / BODYSTRUCTURE, filled lazily by the protocol layer
    envelope      TEXT,
    bodystructure TEXT,
    UNIQUE (folder_id, uid)
);
CREATE INDEX messages_modseq ON messages (folder_id, modseq);
CREATE INDEX messages_body ON messages (body_id);

-- UIDs removed from a folder, kept for QRESYNC (VANISHED) answers.
CREATE TABLE expunged (
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid       INTEGER NOT NULL,
    modseq    INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged (folder_id, modseq);

-- Every authentication decision, success or refusal, and other access decisions.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    protocol  TEXT    NOT NULL,
    mechanism TEXT,
    identity  TEXT,
    mailbox   TEXT,
    peer      TEXT,
    outcome   TEXT    NOT NULL,
    reason    TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_mailbox ON audit (mailbox, at);

-- Mail waiting for another operator's server.
CREATE TABLE queue (
    id              INTEGER PRIMARY KEY,
    body_id         INTEGER NOT NULL REFERENCES bodies (id),
    sender          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    envid           TEXT,
    ret_full        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON queue (next_attempt_at);
CREATE INDEX queue_body ON queue (body_id);

CREATE TABLE queue_recipients (
    id         INTEGER PRIMARY KEY,
    queue_id   INTEGER NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
    recipient  TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    last_error TEXT,
    notify     TEXT,
    orcpt      TEXT
);
CREATE INDEX queue_recipients_queue ON queue_recipients (queue_id, status);
