-- Messages, the outbox that delivers outbound ones, and full-text search over them.

CREATE TYPE message_direction AS ENUM ('inbound', 'outbound');
CREATE TYPE message_sender AS ENUM ('customer', 'agent', 'system');
CREATE TYPE message_content_type AS ENUM ('text', 'template', 'media');
CREATE TYPE message_status AS ENUM ('pending', 'sent', 'delivered', 'read', 'failed');

-- Full-text search uses the `simple` configuration on purpose: customers write in many
-- languages, often several in one conversation, and a chat line is too short to detect its
-- language reliably. A language configuration (`english`, …) would stem other languages'
-- words wrongly and drop their stop words; `simple` only lower-cases and splits words, so a
-- search finds exactly the words written, in any language, at the cost of stemming
-- ("refund" does not find "refunded").
CREATE TABLE messages (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  uuid NOT NULL,
    conversation_id     uuid NOT NULL,
    direction           message_direction NOT NULL,
    sender_type         message_sender NOT NULL,
    sender_agent_id     uuid,
    content_type        message_content_type NOT NULL,
    -- The text the customer sees: the text itself, a template's rendered text, a media caption.
    body                text NOT NULL DEFAULT '' CHECK (length(body) <= 8192),
    template_name       text CHECK (length(template_name) <= 512),
    template_language   text CHECK (length(template_language) <= 16),
    template_parameters jsonb,
    media_url           text CHECK (length(media_url) <= 2048),
    media_mime_type     text CHECK (length(media_mime_type) <= 255),
    status              message_status NOT NULL,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    failure_reason      text CHECK (length(failure_reason) <= 1000),
    -- WhatsApp's id (wamid), known once the message was sent or received.
    external_id         text CHECK (length(external_id) <= 256),
    -- The sender's Idempotency-Key and a hash of the request it came with.
    idempotency_key     text CHECK (length(idempotency_key) <= 255),
    request_hash        bytea,
    search_vector       tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, sender_agent_id) REFERENCES agents (tenant_id, id),
    CHECK ((sender_type = 'agent') = (sender_agent_id IS NOT NULL)),
    CHECK (content_type <> 'template' OR (template_name IS NOT NULL AND template_language IS NOT NULL)),
    CHECK (content_type <> 'media' OR media_url IS NOT NULL),
    CHECK ((status = 'failed') = (failed_at IS NOT NULL)),
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);
-- History: one conversation's messages in time order, read a page at a time from either end.
CREATE INDEX messages_history ON messages (tenant_id, conversation_id, created_at, id);
CREATE UNIQUE INDEX messages_external_id ON messages (tenant_id, external_id)
    WHERE external_id IS NOT NULL;
-- An Idempotency-Key belongs to the agent that sent it.
CREATE UNIQUE INDEX messages_idempotency ON messages (tenant_id, sender_agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- btree_gin puts the tenant into the GIN index, so a small tenant's search does not wade
-- through every other tenant's matches for a common word.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX messages_search ON messages USING gin (tenant_id, search_vector);

-- The conversation list shows the last message.
ALTER TABLE conversations ADD COLUMN last_message_preview text
    CHECK (length(last_message_preview) <= 200);

-- Outbound messages still to be handed to the Outbound Transformer. A row is written with its
-- message and deleted once the message is sent or has failed for good. A dispatcher claims a
-- row by pushing `next_attempt_at` one lease ahead under a fresh `lease_token`: others skip it
-- until the lease runs out, so one attempt at a time is in flight, and a dispatcher that died
-- mid-attempt leaves a row that becomes due again by itself.
CREATE TABLE message_outbox (
    tenant_id       uuid NOT NULL,
    message_id      uuid NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_token     uuid,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX message_outbox_due ON message_outbox (next_attempt_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['messages', 'message_outbox']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant())'
                       ' WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

-- Two jobs cannot run as a tenant: claiming due outbox rows of every tenant, and a search
-- that can use the GIN index (Postgres does not use an index for `@@` under a row-level
-- security policy, because the operator is not leakproof: a search would read every message
-- of the tenant). Each is a SECURITY DEFINER function owned by the schema owner, who is given
-- a policy of its own on just these tables. (The owner could disable RLS on its tables
-- anyway; forcing RLS on it guards against accidents, not against the owner.) The search
-- function filters by the caller's tenant itself.
CREATE POLICY definer_functions ON message_outbox TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY definer_functions ON messages FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION claim_message_outbox(batch integer, lease interval)
    RETURNS TABLE (tenant_id uuid, message_id uuid, attempts integer, lease_token uuid)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE message_outbox o
        SET next_attempt_at = now() + lease, lease_token = gen_random_uuid(), attempts = o.attempts + 1
        FROM (
            SELECT d.tenant_id, d.message_id FROM message_outbox d
            WHERE d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE o.tenant_id = due.tenant_id AND o.message_id = due.message_id
        RETURNING o.tenant_id, o.message_id, o.attempts, o.lease_token
    $$;

-- For /metrics: how many messages await delivery, and since when the oldest has waited.
CREATE FUNCTION message_outbox_backlog()
    RETURNS TABLE (waiting bigint, oldest timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT count(*), min(created_at) FROM message_outbox
    $$;

-- Every message of the caller's tenant matching `query` (web-search syntax), with its rank.
CREATE FUNCTION search_messages(query text, in_conversation uuid)
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

REVOKE ALL ON FUNCTION claim_message_outbox(integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION search_messages(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION message_outbox_backlog() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION message_outbox_backlog() TO portal_app;
GRANT EXECUTE ON FUNCTION claim_message_outbox(integer, interval) TO portal_app;
GRANT EXECUTE ON FUNCTION search_messages(text, uuid) TO portal_app;

GRANT SELECT, INSERT, UPDATE ON messages TO portal_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON message_outbox TO portal_app;
