-- What FETCH ENVELOPE, BODY and BODYSTRUCTURE answer for a body (src/structure.rs),
-- computed when the body is stored and kept in the form the items take on the wire, so
-- that listing a folder reads these short rows rather than every body. A row belongs to
-- a body (the items come from its bytes alone). `version` names the rules that computed
-- it: rows from other rules, and bodies stored before this table, are computed again
-- the first time a FETCH meets them.
CREATE TABLE body_structure (
    body_id       INTEGER PRIMARY KEY REFERENCES bodies (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    envelope      BLOB    NOT NULL,
    body          BLOB    NOT NULL,
    bodystructure BLOB    NOT NULL
) WITHOUT ROWID;

-- Never written: the items belong to the body, not to each message holding it.
ALTER TABLE messages DROP COLUMN envelope;
ALTER TABLE messages DROP COLUMN bodystructure;

-- The append statement of 0015, with the body's structure: written with a new body,
-- left alone for a body already stored.
DROP VIEW message_appends;
CREATE VIEW message_appends AS
SELECT 0 AS folder_id, X'' AS sha256, 0 AS size, X'' AS header, X'' AS content,
       0 AS system_flags, '' AS keywords, 0 AS internal_date, 0 AS quota,
       '' AS search_header, '' AS search_body,
       0 AS structure_version, X'' AS envelope, X'' AS body, X'' AS bodystructure;

CREATE TRIGGER message_appends_insert INSTEAD OF INSERT ON message_appends
BEGIN
    SELECT RAISE(ABORT, 'no such folder')
     WHERE NOT EXISTS (SELECT 1 FROM folders WHERE id = NEW.folder_id);
    SELECT RAISE(ABORT, 'folder has run out of UIDs')
     WHERE (SELECT uidnext FROM folders WHERE id = NEW.folder_id) > 4294967295;
    SELECT RAISE(ABORT, 'over quota')
      FROM folders f JOIN mailboxes b ON b.id = f.mailbox_id
     WHERE NEW.quota AND f.id = NEW.folder_id
       AND (b.used_bytes + NEW.size > b.quota_storage OR b.used_messages + 1 > b.quota_messages);
    INSERT OR IGNORE INTO bodies (sha256, size, header, content)
    VALUES (NEW.sha256, NEW.size, NEW.header, NEW.content);
    INSERT INTO body_search (rowid, header, body)
    SELECT b.id, NEW.search_header, NEW.search_body FROM bodies b
     WHERE b.sha256 = NEW.sha256 AND NOT EXISTS (SELECT 1 FROM body_search s WHERE s.rowid = b.id);
    INSERT OR IGNORE INTO body_structure (body_id, version, envelope, body, bodystructure)
    SELECT b.id, NEW.structure_version, NEW.envelope, NEW.body, NEW.bodystructure
      FROM bodies b WHERE b.sha256 = NEW.sha256;
    UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
     WHERE id = NEW.folder_id;
    INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
    SELECT NEW.folder_id, f.uidnext - 1, f.highestmodseq, NEW.system_flags, NEW.keywords,
           NEW.internal_date, NEW.size, (SELECT id FROM bodies WHERE sha256 = NEW.sha256)
      FROM folders f WHERE f.id = NEW.folder_id;
END;
