-- Propagating the portal's changes to the platform (the State Manager and Genesys Cloud).
--
-- Who is who there: an agent's Genesys Cloud user, a customer's State Manager id, and the
-- Genesys queue a tenant's released conversations go back to.
ALTER TABLE agents ADD COLUMN genesys_user_id text CHECK (length(genesys_user_id) BETWEEN 1 AND 64);
ALTER TABLE customers ADD COLUMN state_manager_id text CHECK (length(state_manager_id) BETWEEN 1 AND 256);
CREATE UNIQUE INDEX customers_state_manager_id ON customers (tenant_id, state_manager_id)
    WHERE state_manager_id IS NOT NULL;
ALTER TABLE tenants ADD COLUMN genesys_queue_id text CHECK (length(genesys_queue_id) BETWEEN 1 AND 64);

-- Where propagation of a conversation's or customer's changes stands (the API's `sync`):
-- NULL before anything was to propagate. A change sets `pending`; the last row delivered sets
-- `synced`; a row that failed for good sets `failed` with its reason, which stays until the
-- next change. Not part of `updated_at` (a customer's entity tag): propagating is not editing.
CREATE TYPE sync_state AS ENUM ('pending', 'synced', 'failed');
ALTER TABLE conversations
    ADD COLUMN sync_state sync_state,
    ADD COLUMN sync_error text CHECK (length(sync_error) <= 1000),
    ADD COLUMN sync_at    timestamptz;
ALTER TABLE customers
    ADD COLUMN sync_state sync_state,
    ADD COLUMN sync_error text CHECK (length(sync_error) <= 1000),
    ADD COLUMN sync_at    timestamptz;

-- The integration outbox: one row per change and target, written in the transaction of the
-- change, deleted once the target acknowledged it or it failed for good (the subject's sync
-- state keeps the outcome). Rows of one subject and target are delivered in `id` order, one
-- at a time: only the oldest row of its chain may be claimed. Leasing works as in the message
-- outbox (see the messages migration).
CREATE TABLE integration_outbox (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    target          text NOT NULL CHECK (target IN ('state_manager', 'genesys')),
    subject_kind    text NOT NULL CHECK (subject_kind IN ('conversation', 'customer')),
    subject_id      uuid NOT NULL,
    change          jsonb NOT NULL,
    -- Sent with every attempt, so the target can drop a repeat of one it applied.
    idempotency_key uuid NOT NULL DEFAULT gen_random_uuid(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_token     uuid,
    last_error      text,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX integration_outbox_due ON integration_outbox (next_attempt_at);
CREATE INDEX integration_outbox_chain ON integration_outbox (tenant_id, target, subject_id, id);

ALTER TABLE integration_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON integration_outbox USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
-- Claiming due rows of every tenant, and the backlog, run as the owner (see the messages migration).
CREATE POLICY definer_functions ON integration_outbox TO CURRENT_USER USING (true) WITH CHECK (true);

CREATE FUNCTION claim_integration_outbox(batch integer, lease interval)
    RETURNS TABLE (tenant_id uuid, id bigint, target text, subject_kind text, subject_id uuid,
                   change jsonb, idempotency_key uuid, attempts integer, lease_token uuid,
                   traceparent text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE integration_outbox o
        SET next_attempt_at = now() + lease, lease_token = gen_random_uuid(), attempts = o.attempts + 1
        FROM (
            SELECT d.tenant_id, d.id FROM integration_outbox d
            WHERE d.next_attempt_at <= now()
              AND NOT EXISTS (
                  SELECT 1 FROM integration_outbox e
                  WHERE e.tenant_id = d.tenant_id AND e.target = d.target
                    AND e.subject_id = d.subject_id AND e.id < d.id)
            ORDER BY d.next_attempt_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE o.tenant_id = due.tenant_id AND o.id = due.id
        RETURNING o.tenant_id, o.id, o.target, o.subject_kind, o.subject_id, o.change,
                  o.idempotency_key, o.attempts, o.lease_token, o.traceparent
    $$;

-- For /metrics: per target, how many changes await propagation and since when the oldest has.
CREATE FUNCTION integration_outbox_backlog()
    RETURNS TABLE (target text, waiting bigint, oldest timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT target, count(*), min(created_at) FROM integration_outbox GROUP BY target
    $$;

REVOKE ALL ON FUNCTION claim_integration_outbox(integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration_outbox_backlog() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_integration_outbox(integer, interval) TO portal_app;
GRANT EXECUTE ON FUNCTION integration_outbox_backlog() TO portal_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration_outbox TO portal_app;
