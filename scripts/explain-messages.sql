-- The message queries as shared/src/messages/repo.rs builds them, under EXPLAIN (ANALYZE, BUFFERS),
-- run as the app role with a tenant set, so row-level security is in force. See docs/performance.md.
-- Usage: psql -h 127.0.0.1 -U <app role> -d <database> -v rare=<word> -v common=<word> \
--          -v phrase='"two words"' -f scripts/explain-messages.sql
\set a '00000000-0000-0000-0000-00000000000a'
\set b '00000000-0000-0000-0000-00000000000b'
\set cols 'm.id, m.conversation_id, m.direction, m.sender_type, m.body, m.status, m.created_at'
BEGIN;
SELECT set_config('app.tenant_id', :'a', true) \g /dev/null
SELECT conversation_id AS conv, created_at AS mid_at, id AS mid_id FROM messages
 WHERE tenant_id = :'a' ORDER BY conversation_id, created_at OFFSET 40 LIMIT 1 \gset
\echo '--- history: latest page'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT :cols FROM messages m WHERE m.tenant_id = :'a' AND m.conversation_id = :'conv' ORDER BY m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- history: before a cursor'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT :cols FROM messages m WHERE m.tenant_id = :'a' AND m.conversation_id = :'conv' AND (m.created_at, m.id) < (:'mid_at', :'mid_id') ORDER BY m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- history: after a cursor'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT :cols FROM messages m WHERE m.tenant_id = :'a' AND m.conversation_id = :'conv' AND (m.created_at, m.id) > (:'mid_at', :'mid_id') ORDER BY m.created_at ASC, m.id ASC LIMIT 26;
\echo '--- history: is there anything newer'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = :'a' AND m.conversation_id = :'conv' AND (m.created_at, m.id) > (:'mid_at', :'mid_id'));
\echo '--- search (supervisor), rare word: the page query'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'rare', NULL) s JOIN messages m ON m.tenant_id = :'a' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- search (supervisor), common word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'common', NULL) s JOIN messages m ON m.tenant_id = :'a' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- search (agent visibility), common word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'common', NULL) s JOIN messages m ON m.tenant_id = :'a' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true AND (c.assigned_agent_id = '00000000-0000-0000-0001-000000000007' OR (c.assigned_agent_id IS NULL AND c.state = 'waiting')) ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- search, phrase'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'phrase', NULL) s JOIN messages m ON m.tenant_id = :'a' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
\echo '--- search within one conversation, common word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'common', :'conv') s JOIN messages m ON m.tenant_id = :'a' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
COMMIT;
BEGIN;
SELECT set_config('app.tenant_id', :'b', true) \g /dev/null
\echo '--- small tenant, a word common in the big tenant'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT s.message_id, s.rank, m.created_at FROM search_messages(:'common', NULL) s JOIN messages m ON m.tenant_id = :'b' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26;
COMMIT;
