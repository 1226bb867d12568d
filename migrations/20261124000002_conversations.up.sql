-- Customers, conversations, their assignment history, and the search terms behind `q`.

CREATE TABLE customers (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    phone_e164   text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    email        text CHECK (length(email) <= 320),
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id)
);
CREATE UNIQUE INDEX customers_phone ON customers (tenant_id, phone_e164) WHERE phone_e164 IS NOT NULL;

-- Why a table of terms rather than pg_trgm: under row-level security Postgres will not use a
-- trigram index for ILIKE (the operator is not leakproof), so a search became a scan of every
-- customer. Each customer's lower-cased name and phone digits are stored here as all their
-- suffixes (cut to 32 characters); "contains q" becomes "a suffix starts with q", a range on a
-- C-collated btree whose comparison operators are leakproof, so the index is used under RLS.
CREATE TABLE customer_search_terms (
    tenant_id   uuid NOT NULL,
    term        text COLLATE "C" NOT NULL,
    customer_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, term, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_search_terms_customer ON customer_search_terms (tenant_id, customer_id);

CREATE FUNCTION customer_search_suffixes(value text) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT DISTINCT left(substr(value, i), 32)
        FROM generate_series(1, length(value)) AS i
        WHERE substr(value, i, 1) <> ' '
    $$;

CREATE FUNCTION customer_search_terms_refresh() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
           AND NEW.display_name IS NOT DISTINCT FROM OLD.display_name
           AND NEW.phone_e164 IS NOT DISTINCT FROM OLD.phone_e164 THEN
            RETURN NEW;
        END IF;
        DELETE FROM customer_search_terms WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.id;
        INSERT INTO customer_search_terms (tenant_id, term, customer_id)
        SELECT NEW.tenant_id, t, NEW.id
        FROM (
            SELECT customer_search_suffixes(regexp_replace(lower(btrim(NEW.display_name)), '\s+', ' ', 'g'))
            UNION
            SELECT customer_search_suffixes(regexp_replace(coalesce(NEW.phone_e164, ''), '[^0-9]', '', 'g'))
        ) AS s (t)
        WHERE t <> ''
        ON CONFLICT DO NOTHING;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER customer_search_terms_refresh
    AFTER INSERT OR UPDATE OF display_name, phone_e164 ON customers
    FOR EACH ROW EXECUTE FUNCTION customer_search_terms_refresh();

CREATE TYPE conversation_state AS ENUM ('active', 'waiting', 'closed');

CREATE TABLE conversations (
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                      uuid NOT NULL,
    customer_id             uuid NOT NULL,
    channel                 text NOT NULL DEFAULT 'whatsapp',
    state                   conversation_state NOT NULL DEFAULT 'waiting',
    assigned_agent_id       uuid,
    state_manager_id        text,
    genesys_conversation_id text,
    close_reason            text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    last_activity_at        timestamptz NOT NULL DEFAULT now(),
    closed_at               timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, assigned_agent_id) REFERENCES agents (tenant_id, id),
    -- An active conversation always has an agent; a closed one has its closing time.
    CHECK (state <> 'active' OR assigned_agent_id IS NOT NULL),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX conversations_state_manager_id ON conversations (tenant_id, state_manager_id)
    WHERE state_manager_id IS NOT NULL;
CREATE UNIQUE INDEX conversations_genesys_id ON conversations (tenant_id, genesys_conversation_id)
    WHERE genesys_conversation_id IS NOT NULL;
-- The list query walks one of these in sort order and stops after `limit` rows: by tenant, by
-- state tab, by assignee (an agent's own queue, and `assigned_agent_id IS NULL` for unassigned),
-- and by customer (search hits); each for both sort keys.
CREATE INDEX conversations_by_activity ON conversations (tenant_id, last_activity_at, id);
CREATE INDEX conversations_by_created ON conversations (tenant_id, created_at, id);
CREATE INDEX conversations_by_state_activity ON conversations (tenant_id, state, last_activity_at, id);
CREATE INDEX conversations_by_state_created ON conversations (tenant_id, state, created_at, id);
CREATE INDEX conversations_by_assignee_activity ON conversations (tenant_id, assigned_agent_id, last_activity_at, id);
CREATE INDEX conversations_by_assignee_created ON conversations (tenant_id, assigned_agent_id, created_at, id);
CREATE INDEX conversations_by_customer ON conversations (tenant_id, customer_id);

CREATE TYPE assignment_kind AS ENUM ('assigned', 'unassigned', 'transferred');

CREATE TABLE conversation_assignments (
    tenant_id       uuid NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    conversation_id uuid NOT NULL,
    kind            assignment_kind NOT NULL,
    from_agent_id   uuid,
    to_agent_id     uuid,
    actor_agent_id  uuid,
    note            text CHECK (length(note) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX conversation_assignments_by_conversation
    ON conversation_assignments (tenant_id, conversation_id, created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'customer_search_terms', 'conversations', 'conversation_assignments']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant())'
                       ' WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON customers, conversations TO portal_app;
GRANT SELECT, INSERT, DELETE ON customer_search_terms TO portal_app;
GRANT SELECT, INSERT ON conversation_assignments TO portal_app;
