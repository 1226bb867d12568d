-- The queue consumer's bookkeeping for `agent.notifications`.

-- Every applied notification's `event_id`, inserted in the transaction that applies it: a
-- redelivery (the consumer died between commit and ack, or the broker redelivered after a
-- connection loss) finds its id here and is acknowledged without being applied twice.
-- Rows older than the consumer's `processed_retention_hours` are pruned: far longer than any
-- redelivery can come late.
CREATE TABLE processed_notifications (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_id     uuid NOT NULL,
    type         text NOT NULL CHECK (length(type) <= 64),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX processed_notifications_by_age ON processed_notifications (processed_at);

ALTER TABLE processed_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE processed_notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON processed_notifications
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT ON processed_notifications TO portal_app;

CREATE FUNCTION prune_processed_notifications(older_than interval, batch integer)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        WITH gone AS (
            DELETE FROM processed_notifications p
            USING (
                SELECT tenant_id, event_id FROM processed_notifications
                WHERE processed_at < now() - older_than
                ORDER BY processed_at
                LIMIT batch
                FOR UPDATE SKIP LOCKED
            ) old
            WHERE p.tenant_id = old.tenant_id AND p.event_id = old.event_id
            RETURNING 1
        )
        SELECT count(*) FROM gone
    $$;
REVOKE ALL ON FUNCTION prune_processed_notifications(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_processed_notifications(interval, integer) TO portal_app;

-- A kept receipt remembers the notification it came in, so one kept too long is dead-lettered
-- as the message that was published, not as a reconstruction.
ALTER TABLE pending_receipts ADD COLUMN source jsonb;

-- Receipts kept longer than `older_than`, across tenants, for the consumer's sweeper; it
-- dead-letters each and then deletes it in the tenant's own transaction.
CREATE FUNCTION overdue_pending_receipts(older_than interval, batch integer)
    RETURNS TABLE (tenant_id uuid, external_id text, status message_status, source jsonb, received_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT tenant_id, external_id, status, source, received_at FROM pending_receipts
        WHERE received_at < now() - older_than
        ORDER BY received_at
        LIMIT batch
    $$;
REVOKE ALL ON FUNCTION overdue_pending_receipts(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION overdue_pending_receipts(interval, integer) TO portal_app;
