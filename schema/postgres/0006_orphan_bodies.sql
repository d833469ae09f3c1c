-- Removes the listed bodies that no message and no queued mail refers to any more, in
-- one round trip (an EXPUNGE pays for each one it makes).
--
-- Another node may file a message with one of them after this statement's snapshot:
-- PostgreSQL then refuses the delete (foreign key), and the bodies rightly stay. The
-- exception block is a subtransaction, as a savepoint would be: the refusal undoes this
-- delete only, never the caller's transaction.
CREATE FUNCTION delete_orphan_bodies(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM bodies b WHERE b.id = ANY(ids)
       AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = b.id)
       AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = b.id);
EXCEPTION WHEN foreign_key_violation THEN
    NULL;
END
$$;
