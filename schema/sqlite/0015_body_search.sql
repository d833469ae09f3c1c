-- The body text index of SEARCH TEXT and BODY (src/store/search_text.rs): per body, its
-- header section and decoded text parts, casemapped by the server, as trigrams. The
-- trigram tokenizer makes a quoted needle of three characters or more match exactly
-- where it is a substring; `case_sensitive 1` because the text is casemapped already
-- (FTS5's own folding differs from i;unicode-casemap). Contentless: the index alone is
-- kept, not a second copy of the text; `contentless_delete` lets a body's row go with it.
-- The rowid is the body's id. Bodies stored before this table get their row the first
-- time a search meets them (their text needs a MIME parser, which SQL has not).
CREATE VIRTUAL TABLE body_search USING fts5(
    header, body,
    content = '', contentless_delete = 1,
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER bodies_search_delete AFTER DELETE ON bodies
BEGIN
    DELETE FROM body_search WHERE rowid = OLD.id;
END;

-- The append statement of 0011, with the body's index text: written with a new body,
-- left alone for a body already stored.
DROP VIEW message_appends;
CREATE VIEW message_appends AS
SELECT 0 AS folder_id, X'' AS sha256, 0 AS size, X'' AS header, X'' AS content,
       0 AS system_flags, '' AS keywords, 0 AS internal_date, 0 AS quota,
       '' AS search_header, '' AS search_body;

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
    UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
     WHERE id = NEW.folder_id;
    INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
    SELECT NEW.folder_id, f.uidnext - 1, f.highestmodseq, NEW.system_flags, NEW.keywords,
           NEW.internal_date, NEW.size, (SELECT id FROM bodies WHERE sha256 = NEW.sha256)
      FROM folders f WHERE f.id = NEW.folder_id;
END;
