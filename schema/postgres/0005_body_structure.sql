-- What FETCH ENVELOPE, BODY and BODYSTRUCTURE answer for a body: see
-- schema/sqlite/0016_body_structure.sql.
CREATE TABLE body_structure (
    body_id       BIGINT PRIMARY KEY REFERENCES bodies (id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    envelope      BYTEA  NOT NULL,
    body          BYTEA  NOT NULL,
    bodystructure BYTEA  NOT NULL
);

-- Never written: the items belong to the body, not to each message holding it.
ALTER TABLE messages DROP COLUMN envelope, DROP COLUMN bodystructure;
