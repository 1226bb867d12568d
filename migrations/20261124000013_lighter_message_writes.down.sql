ALTER TABLE messages ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
CREATE INDEX conversations_by_created ON conversations (tenant_id, created_at, id);
CREATE INDEX conversations_by_activity ON conversations (tenant_id, last_activity_at, id);
ALTER TABLE messages ADD UNIQUE (id);
ALTER TABLE conversations ADD UNIQUE (id);
