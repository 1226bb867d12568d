-- Events are kept for `events.retention_hours` so reconnecting clients can replay what they
-- missed; older, published ones are deleted in batches by the relay. Sequence numbers stay
-- gapless among the rows kept, so a missing `seq` means "pruned": the client must resync.

CREATE INDEX events_by_age ON events (created_at);

CREATE FUNCTION prune_events(older_than interval, batch integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        pruned integer;
    BEGIN
        WITH doomed AS (
            SELECT e.tenant_id, e.seq FROM events e
            WHERE e.created_at < now() - older_than AND e.published_at IS NOT NULL
            ORDER BY e.created_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM events e USING doomed d WHERE e.tenant_id = d.tenant_id AND e.seq = d.seq;
        GET DIAGNOSTICS pruned = ROW_COUNT;
        RETURN pruned;
    END
    $$;

REVOKE ALL ON FUNCTION prune_events(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_events(interval, integer) TO portal_app;
