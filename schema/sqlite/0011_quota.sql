-- Mailbox quotas (RFC 9208): limits set by the operator, NULL for none, and the usage
-- they are checked against. Usage is kept by triggers on `messages`, so an APPEND or a
-- delivery reads one row instead of summing the mailbox, and no code path that adds or
-- removes messages (IMAP, SMTP, lifecycle deletion, cascades) can forget to count.
ALTER TABLE mailboxes ADD COLUMN quota_storage INTEGER CHECK (quota_storage IS NULL OR quota_storage >= 0);
ALTER TABLE mailboxes ADD COLUMN quota_messages INTEGER CHECK (quota_messages IS NULL OR quota_messages >= 0);
ALTER TABLE mailboxes ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;

UPDATE mailboxes SET
    used_bytes = (SELECT COALESCE(SUM(m.size), 0) FROM messages m
                    JOIN folders f ON f.id = m.folder_id WHERE f.mailbox_id = mailboxes.id),
    used_messages = (SELECT COUNT(*) FROM messages m
                    JOIN folders f ON f.id = m.folder_id WHERE f.mailbox_id = mailboxes.id);

CREATE TRIGGER usage_message_added AFTER INSERT ON messages
BEGIN
    UPDATE mailboxes SET used_bytes = used_bytes + NEW.size, used_messages = used_messages + 1
     WHERE id = (SELECT mailbox_id FROM folders WHERE id = NEW.folder_id);
END;

CREATE TRIGGER usage_message_removed AFTER DELETE ON messages
BEGIN
    UPDATE mailboxes SET used_bytes = used_bytes - OLD.size, used_messages = used_messages - 1
     WHERE id = (SELECT mailbox_id FROM folders WHERE id = OLD.folder_id);
END;

CREATE TRIGGER usage_message_refiled AFTER UPDATE OF folder_id, size ON messages
BEGIN
    UPDATE mailboxes SET used_bytes = used_bytes - OLD.size, used_messages = used_messages - 1
     WHERE id = (SELECT mailbox_id FROM folders WHERE id = OLD.folder_id);
    UPDATE mailboxes SET used_bytes = used_bytes + NEW.size, used_messages = used_messages + 1
     WHERE id = (SELECT mailbox_id FROM folders WHERE id = NEW.folder_id);
END;

-- A folder's messages deleted by cascade find their folder gone (SQLite deletes the
-- parent first), so the folder takes its messages off the usage before it goes.
CREATE TRIGGER usage_folder_removed BEFORE DELETE ON folders
BEGIN
    UPDATE mailboxes SET
        used_bytes = used_bytes - (SELECT COALESCE(SUM(size), 0) FROM messages WHERE folder_id = OLD.id),
        used_messages = used_messages - (SELECT COUNT(*) FROM messages WHERE folder_id = OLD.id)
     WHERE id = OLD.mailbox_id;
END;

-- The append statement of 0004, with one more column: `quota` = 1 refuses a message
-- that would take its mailbox over a limit (IMAP APPEND, RFC 9208 §4.3), checked row by
-- row against the usage the rows before it in the same statement have already added.
-- SMTP delivery passes 0: it checked the limit at RCPT, when refusing was still
-- possible for that recipient alone.
DROP VIEW message_appends;
CREATE VIEW message_appends AS
SELECT 0 AS folder_id, X'' AS sha256, 0 AS size, X'' AS header, X'' AS content,
       0 AS system_flags, '' AS keywords, 0 AS internal_date, 0 AS quota;

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
    UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
     WHERE id = NEW.folder_id;
    INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
    SELECT NEW.folder_id, f.uidnext - 1, f.highestmodseq, NEW.system_flags, NEW.keywords,
           NEW.internal_date, NEW.size, (SELECT id FROM bodies WHERE sha256 = NEW.sha256)
      FROM folders f WHERE f.id = NEW.folder_id;
END;
