-- The list queries as the API builds them, under EXPLAIN (ANALYZE, BUFFERS), run as the app role
-- with a tenant set, so row-level security is in force. See docs/performance.md for how to load
-- the data set (1 tenant with 200k conversations / 100k customers, 1 small tenant) and the results.
-- Usage: psql -h 127.0.0.1 -U portal_api -d portal_bench -f scripts/explain-list.sql
\set sel 'SELECT c.id, c.state, cu.display_name, cu.phone_e164, a.display_name'
\set joins 'JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.id = c.customer_id LEFT JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.assigned_agent_id'
BEGIN;
SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-00000000000a', true) \g /dev/null
\echo '--- supervisor, default sort'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.state = 'active' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.state = 'waiting' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.state = 'closed' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
\echo '--- agent: own + unassigned waiting'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.assigned_agent_id = '00000000-0000-0000-0001-000000000007' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.assigned_agent_id IS NULL AND c.state = 'waiting' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
\echo '--- supervisor, state=waiting&state=active'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.state = 'active' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.state = 'waiting' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
\echo '--- supervisor, q=phone digits 0004217'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.customer_id IN (SELECT t.customer_id FROM customer_search_terms t WHERE t.tenant_id = '00000000-0000-0000-0000-00000000000a' AND t.term >= '0004217' AND t.term < '0004218') ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
\echo '--- supervisor, q=name "grace smith 12"'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000a' AND c.customer_id IN (SELECT t.customer_id FROM customer_search_terms t WHERE t.tenant_id = '00000000-0000-0000-0000-00000000000a' AND t.term >= 'grace smith 12' AND t.term < 'grace smith 13') ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
COMMIT;
BEGIN;
SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-00000000000b', true) \g /dev/null
\echo '--- small tenant, default sort'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) :sel FROM ((SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000b' AND c.state = 'active' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000b' AND c.state = 'waiting' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26) UNION ALL (SELECT c.* FROM conversations c WHERE c.tenant_id = '00000000-0000-0000-0000-00000000000b' AND c.state = 'closed' ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26)) c :joins ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26;
COMMIT;
