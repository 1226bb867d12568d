-- Search within one conversation read the tenant's matches for the words and filtered them to
-- the conversation. With the conversation in the GIN index, it reads just that conversation's
-- matches; tenant-wide search uses the index as before (GIN serves any subset of its columns).
DROP INDEX messages_search;
CREATE INDEX messages_search ON messages USING gin (tenant_id, conversation_id, search_vector);

-- Two statements instead of `in_conversation IS NULL OR ...`, so each plan can use the index
-- for the conditions it has.
CREATE OR REPLACE FUNCTION search_messages(query text, in_conversation uuid)
    RETURNS TABLE (message_id uuid, rank real)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        q tsquery := websearch_to_tsquery('simple', query);
    BEGIN
        IF in_conversation IS NULL THEN
            RETURN QUERY
                SELECT m.id, ts_rank_cd(m.search_vector, q)
                FROM messages m
                WHERE m.tenant_id = app_current_tenant() AND m.search_vector @@ q;
        ELSE
            RETURN QUERY
                SELECT m.id, ts_rank_cd(m.search_vector, q)
                FROM messages m
                WHERE m.tenant_id = app_current_tenant() AND m.conversation_id = in_conversation
                  AND m.search_vector @@ q;
        END IF;
    END
    $$;
