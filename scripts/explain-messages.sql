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
-- The rest: the whole statement repo::search sends (headlines, customer join), the agent filter for
-- the other queries, and the bare cost of the function for the common word.
\set allcols 'm.id, m.conversation_id, m.direction, m.sender_type, m.sender_agent_id, m.content_type, m.body, m.template_name, m.template_language, m.template_parameters, m.media_url, m.media_mime_type, m.status, m.sent_at, m.delivered_at, m.read_at, m.failed_at, m.failure_reason, m.external_id, m.created_at, m.updated_at'
\set agent '(c.assigned_agent_id = ''00000000-0000-0000-0001-000000000007'' OR (c.assigned_agent_id IS NULL AND c.state = ''waiting''))'
\set outer_sel 'SELECT :allcols, p.rank, c.state, c.customer_id, cu.display_name AS customer_name, cu.phone_e164 AS customer_phone, c.assigned_agent_id, ts_headline(''simple'', translate(m.body, chr(2) || chr(3), ''''), websearch_to_tsquery(''simple'', '
\set outer_mid '), format(''StartSel=%s, StopSel=%s, MaxWords=30, MinWords=12'', chr(2), chr(3))) AS snippet FROM (SELECT s.message_id, s.rank, m.created_at FROM search_messages('
\set outer_end 'ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT 26) p JOIN messages m ON m.tenant_id = :''a'' AND m.id = p.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.id = c.customer_id ORDER BY p.rank DESC, p.created_at DESC, m.id DESC'
\set inner_join ') s JOIN messages m ON m.tenant_id = :''a'' AND m.id = s.message_id JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true'
BEGIN;
SELECT set_config('app.tenant_id', :'a', true) \g /dev/null
\echo '--- full statement (supervisor), rare word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'rare' :outer_mid :'rare', NULL :inner_join :outer_end;
\echo '--- full statement (agent), rare word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'rare' :outer_mid :'rare', NULL :inner_join AND :agent :outer_end;
\echo '--- full statement (supervisor), common word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'common' :outer_mid :'common', NULL :inner_join :outer_end;
\echo '--- full statement (agent), common word'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'common' :outer_mid :'common', NULL :inner_join AND :agent :outer_end;
\echo '--- full statement (supervisor), phrase'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'phrase' :outer_mid :'phrase', NULL :inner_join :outer_end;
\echo '--- full statement (agent), phrase'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'phrase' :outer_mid :'phrase', NULL :inner_join AND :agent :outer_end;
\echo '--- full statement (supervisor), common word within one conversation'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :outer_sel :'common' :outer_mid :'common', :'conv' :inner_join :outer_end;
\echo '--- the function alone, common word: SELECT count(*) FROM search_messages(common, NULL)'
\timing on
SELECT count(*) FROM search_messages(:'common', NULL);
\timing off
COMMIT;
