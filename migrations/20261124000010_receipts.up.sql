-- Delivery receipts from WhatsApp (through agent.notifications) that arrive before the message
-- they refer to is known by its WhatsApp id: kept here and applied, in status order, when the
-- message gets that id; the queue consumer dead-letters one kept too long.
CREATE TABLE pending_receipts (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id    text NOT NULL CHECK (length(external_id) <= 256),
    status         message_status NOT NULL CHECK (status <> 'pending'),
    failure_reason text CHECK (length(failure_reason) <= 1000),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, external_id, status)
);
CREATE INDEX pending_receipts_by_age ON pending_receipts (received_at);

ALTER TABLE pending_receipts ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_receipts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pending_receipts
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, DELETE ON pending_receipts TO portal_app;
