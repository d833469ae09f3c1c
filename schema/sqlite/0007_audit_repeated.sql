-- Identical audit decisions close together share one row: `repeated` counts the ones
-- folded into it after the first, so a flood of refusals cannot fill the disk and none
-- of them goes unrecorded.
ALTER TABLE audit ADD COLUMN repeated INTEGER NOT NULL DEFAULT 0;
-- Finding the row to fold into: the latest of the same peer address (any port).
CREATE INDEX audit_peer ON audit (peer, at);
