CREATE OR REPLACE FUNCTION search_messages(query text, in_conversation uuid)
    RETURNS TABLE (message_id uuid, rank real)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT m.id, ts_rank_cd(m.search_vector, q)
        FROM messages m, websearch_to_tsquery('simple', query) q
        WHERE m.tenant_id = app_current_tenant()
          AND m.search_vector @@ q
          AND (in_conversation IS NULL OR m.conversation_id = in_conversation)
    $$;
DROP INDEX messages_search;
CREATE INDEX messages_search ON messages USING gin (tenant_id, search_vector);
