-- The W3C trace context (`traceparent`) of the span that wrote an event or queued a message,
-- so the realtime emit of the event joins the trace of the request (or RabbitMQ message) that
-- caused it, and each delivery attempt links to the request that stored the message. NULL
-- when traces are off. Adding a nullable column without a default rewrites nothing.
ALTER TABLE events ADD COLUMN traceparent text;
ALTER TABLE message_outbox ADD COLUMN traceparent text;

-- The two functions that hand these rows out now return the column too.
DROP FUNCTION claim_unpublished_events(interval, integer);
CREATE FUNCTION claim_unpublished_events(min_age interval, batch integer)
    RETURNS TABLE (tenant_id uuid, seq bigint, event_type text, payload jsonb, created_at timestamptz,
                   traceparent text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT e.tenant_id, e.seq, e.event_type, e.payload, e.created_at, e.traceparent
        FROM unpublished_events u
        JOIN events e ON e.tenant_id = u.tenant_id AND e.seq = u.seq
        WHERE u.created_at <= now() - min_age
        ORDER BY u.tenant_id, u.seq
        LIMIT batch
        FOR UPDATE OF u SKIP LOCKED
    $$;
REVOKE ALL ON FUNCTION claim_unpublished_events(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_unpublished_events(interval, integer) TO portal_app;

DROP FUNCTION claim_message_outbox(integer, interval);
CREATE FUNCTION claim_message_outbox(batch integer, lease interval)
    RETURNS TABLE (tenant_id uuid, message_id uuid, attempts integer, lease_token uuid, traceparent text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE message_outbox o
        SET next_attempt_at = now() + lease, lease_token = gen_random_uuid(), attempts = o.attempts + 1
        FROM (
            SELECT d.tenant_id, d.message_id FROM message_outbox d
            WHERE d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE o.tenant_id = due.tenant_id AND o.message_id = due.message_id
        RETURNING o.tenant_id, o.message_id, o.attempts, o.lease_token, o.traceparent
    $$;
REVOKE ALL ON FUNCTION claim_message_outbox(integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_message_outbox(integer, interval) TO portal_app;
