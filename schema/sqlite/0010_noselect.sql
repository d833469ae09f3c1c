-- A folder DELETEd while it has children keeps its name for them, without messages,
-- and cannot be selected (RFC 3501 §6.3.4: it acquires \Noselect).
ALTER TABLE folders ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0;
