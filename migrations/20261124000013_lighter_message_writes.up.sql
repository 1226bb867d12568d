-- Every customer message inserts a message row and rewrites its conversation (new activity
-- time, new preview); under a busy queue these are most of the database's work. Each index
-- entry those writes need is kept only where a read uses it:
--
-- * `UNIQUE (id)` on conversations and messages: ids are random UUIDs this service makes, and
--   every query names the tenant, so the primary key `(tenant_id, id)` serves every lookup.
-- * The tenant-wide list orders: the whole-tenant list reads one index range per state (a Merge
--   Append of `conversations_by_state_*`), as the state tabs already do.
-- * `messages.tenant_id REFERENCES tenants`: implied by the `(tenant_id, conversation_id)`
--   foreign key to conversations, whose tenant cascades to them; it cost a trigger per insert.
ALTER TABLE conversations DROP CONSTRAINT conversations_id_key;
ALTER TABLE messages DROP CONSTRAINT messages_id_key;
DROP INDEX conversations_by_activity;
DROP INDEX conversations_by_created;
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;
