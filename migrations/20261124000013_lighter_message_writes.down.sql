DROP INDEX conversations_active_by_activity;
DROP INDEX conversations_waiting_by_activity;
DROP INDEX conversations_closed_by_activity;
DROP INDEX conversations_active_by_created;
DROP INDEX conversations_waiting_by_created;
DROP INDEX conversations_closed_by_created;
CREATE INDEX conversations_by_activity ON conversations (tenant_id, last_activity_at, id);
CREATE INDEX conversations_by_created ON conversations (tenant_id, created_at, id);
CREATE INDEX conversations_by_state_activity ON conversations (tenant_id, state, last_activity_at, id);
CREATE INDEX conversations_by_state_created ON conversations (tenant_id, state, created_at, id);

ALTER TABLE messages ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE messages ADD UNIQUE (id);
ALTER TABLE conversations ADD UNIQUE (id);
