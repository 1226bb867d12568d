-- The event log: every change to a conversation writes its row here in the same transaction.
-- The realtime service publishes rows and replays them to reconnecting clients by `seq`.

-- One counter per tenant. Taking the next number locks the tenant's row until commit, so
-- sequence numbers are gapless and become visible in order: a reader that sees seq N has
-- already seen every seq below it, which is what replay after a reconnect relies on.
CREATE TABLE tenant_event_counters (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, seq)
);
-- The relay looks only for what is still unpublished.
CREATE INDEX events_unpublished ON events (tenant_id, seq) WHERE published_at IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_event_counters', 'events']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant())'
                       ' WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON tenant_event_counters, events TO portal_app;
