-- Withdrawn access must end the sessions that were opened with it, in every process that
-- shares this database (`serve` on several nodes, the CLI in another process). Open
-- sessions cannot hear an in-process signal from those, so the signal is in the store:
-- a counter that moves in the same transaction as anything that can take access away.
-- Sessions read it (one primary-key row) every second or so and decide again when it
-- moved. Triggers bump it, so no code path that deletes a grant or a mailbox (CLI
-- revoke or delete, certificate unbinding, lifecycle deletion, cascades) can forget to.
CREATE TABLE access_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO access_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER access_epoch_grant_deleted AFTER DELETE ON grants
BEGIN
    UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER access_epoch_mailbox_deleted AFTER DELETE ON mailboxes
BEGIN
    UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

-- Who a mailbox belongs to and what kind it is decide access too.
CREATE TRIGGER access_epoch_mailbox_holder_changed AFTER UPDATE OF kind, owner_idnat ON mailboxes
BEGIN
    UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

-- Grants are only inserted or deleted today; an edited grant could take access away too.
CREATE TRIGGER access_epoch_grant_changed AFTER UPDATE ON grants
BEGIN
    UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
