-- Publishing event rows to Redis. A process publishes the events of its own transactions right
-- after they commit and then marks them published; a relay publishes whatever is still
-- unpublished after a grace period (its publisher crashed, or Redis was down). Both work across
-- tenants, so they go through SECURITY DEFINER functions (see the messages migration for why
-- the owner gets a policy of its own).

CREATE POLICY definer_functions ON events TO CURRENT_USER USING (true) WITH CHECK (true);

-- Claims unpublished events older than `min_age`, oldest first per tenant. The rows stay
-- locked until the caller's transaction ends, so concurrent relays take different rows.
CREATE FUNCTION claim_unpublished_events(min_age interval, batch integer)
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

CREATE FUNCTION mark_events_published(tenants uuid[], seqs bigint[])
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE events e SET published_at = now()
        FROM unnest(tenants, seqs) AS p (tenant_id, seq)
        WHERE e.tenant_id = p.tenant_id AND e.seq = p.seq AND e.published_at IS NULL
    $$;

REVOKE ALL ON FUNCTION claim_unpublished_events(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION mark_events_published(uuid[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_unpublished_events(interval, integer) TO portal_app;
GRANT EXECUTE ON FUNCTION mark_events_published(uuid[], bigint[]) TO portal_app;
