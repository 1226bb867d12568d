ALTER TABLE events ADD COLUMN published_at timestamptz;
UPDATE events e SET published_at = now()
    WHERE NOT EXISTS (SELECT 1 FROM unpublished_events u WHERE u.tenant_id = e.tenant_id AND u.seq = e.seq);
CREATE INDEX events_unpublished ON events (tenant_id, seq) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION claim_unpublished_events(min_age interval, batch integer)
    RETURNS TABLE (tenant_id uuid, seq bigint, event_type text, payload jsonb, created_at timestamptz)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT e.tenant_id, e.seq, e.event_type, e.payload, e.created_at
        FROM events e
        WHERE e.published_at IS NULL AND e.created_at <= now() - min_age
        ORDER BY e.tenant_id, e.seq
        LIMIT batch
        FOR UPDATE SKIP LOCKED
    $$;

CREATE OR REPLACE FUNCTION mark_events_published(tenants uuid[], seqs bigint[])
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE events e SET published_at = now()
        FROM unnest(tenants, seqs) AS p (tenant_id, seq)
        WHERE e.tenant_id = p.tenant_id AND e.seq = p.seq AND e.published_at IS NULL
    $$;

CREATE OR REPLACE FUNCTION prune_events(older_than interval, batch integer)
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

DROP TABLE unpublished_events;
