-- An append as one statement: body (stored once), the folder's next UID and MODSEQ, and
-- the message row, all or nothing. SQLite undoes a failed statement on its own, so the
-- writer can run an append without a savepoint around it: fewer round trips per message.
CREATE VIEW message_appends AS
SELECT 0 AS folder_id, X'' AS sha256, 0 AS size, X'' AS header, X'' AS content,
       0 AS system_flags, '' AS keywords, 0 AS internal_date;

CREATE TRIGGER message_appends_insert INSTEAD OF INSERT ON message_appends
BEGIN
    SELECT RAISE(ABORT, 'no such folder')
     WHERE NOT EXISTS (SELECT 1 FROM folders WHERE id = NEW.folder_id);
    SELECT RAISE(ABORT, 'folder has run out of UIDs')
     WHERE (SELECT uidnext FROM folders WHERE id = NEW.folder_id) > 4294967295;
    INSERT OR IGNORE INTO bodies (sha256, size, header, content)
    VALUES (NEW.sha256, NEW.size, NEW.header, NEW.content);
    UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
     WHERE id = NEW.folder_id;
    INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
    SELECT NEW.folder_id, f.uidnext - 1, f.highestmodseq, NEW.system_flags, NEW.keywords,
           NEW.internal_date, NEW.size, (SELECT id FROM bodies WHERE sha256 = NEW.sha256)
      FROM folders f WHERE f.id = NEW.folder_id;
END;
