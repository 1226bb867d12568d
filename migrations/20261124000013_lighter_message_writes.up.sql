-- Every customer message inserts a message row and rewrites its conversation (new activity
-- time, new preview, never a HOT update); under a busy queue these writes are most of the
-- database's work. Each index entry they make is now one some read uses.
--
-- * `UNIQUE (id)` on conversations and messages: ids are random UUIDs this service makes, and
--   every query names the tenant, so the primary key `(tenant_id, id)` serves every lookup.
-- * `messages.tenant_id REFERENCES tenants`: implied by the `(tenant_id, conversation_id)`
--   foreign key to conversations, whose tenant cascades to them; it cost a trigger per insert.
-- * The list orders by state: `state = …` cannot be an index condition under row-level
--   security (enum equality is not leakproof), so `(tenant_id, state, …)` indexes were never
--   read in order; a state tab walked the tenant-wide index and filtered. One partial index per
--   state is matched by the state in the query instead, and reads just the page. A row sits in
--   one state, so it has one entry per sort key, and the tenant-wide list is a Merge Append of
--   the three (shared/src/conversations/repo.rs, `branches`): the tenant-wide indexes go.
--
-- Building the new indexes holds a write lock on conversations for as long as it takes (1.4 s
-- per million conversations on a 2-core machine): run the migration at a quiet hour.
ALTER TABLE conversations DROP CONSTRAINT conversations_id_key;
ALTER TABLE messages DROP CONSTRAINT messages_id_key;
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;

DROP INDEX conversations_by_activity;
DROP INDEX conversations_by_created;
DROP INDEX conversations_by_state_activity;
DROP INDEX conversations_by_state_created;
CREATE INDEX conversations_active_by_activity ON conversations (tenant_id, last_activity_at, id) WHERE state = 'active';
CREATE INDEX conversations_waiting_by_activity ON conversations (tenant_id, last_activity_at, id) WHERE state = 'waiting';
CREATE INDEX conversations_closed_by_activity ON conversations (tenant_id, last_activity_at, id) WHERE state = 'closed';
CREATE INDEX conversations_active_by_created ON conversations (tenant_id, created_at, id) WHERE state = 'active';
CREATE INDEX conversations_waiting_by_created ON conversations (tenant_id, created_at, id) WHERE state = 'waiting';
CREATE INDEX conversations_closed_by_created ON conversations (tenant_id, created_at, id) WHERE state = 'closed';
