-- WhatsApp Business Accounts (one per tenant) and the message templates synced from them.

-- The access token is stored encrypted (ChaCha20-Poly1305, the tenant id as associated data, so a
-- ciphertext copied to another tenant's row does not decrypt); the key is in configuration, never
-- in the database.
CREATE TABLE whatsapp_accounts (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    waba_id          text NOT NULL CHECK (waba_id ~ '^[0-9]{1,32}$'),
    phone_number_id  text CHECK (phone_number_id ~ '^[0-9]{1,32}$'),
    token_nonce      bytea NOT NULL CHECK (length(token_nonce) = 12),
    token_ciphertext bytea NOT NULL CHECK (length(token_ciphertext) <= 4096),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A template as WhatsApp describes it. `status` is text, not an enum: WhatsApp adds statuses, and
-- an unknown one must be kept, not fail the sync. A template gone upstream keeps its row with
-- `deleted_at` set (messages refer to it by name) and can no longer be sent.
CREATE TABLE templates (
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    external_id      text NOT NULL CHECK (length(external_id) <= 64),
    name             text NOT NULL CHECK (length(name) <= 512),
    language         text NOT NULL CHECK (length(language) <= 16),
    category         text NOT NULL DEFAULT '' CHECK (length(category) <= 64),
    status           text NOT NULL CHECK (length(status) <= 64),
    parameter_format text NOT NULL DEFAULT 'POSITIONAL' CHECK (length(parameter_format) <= 32),
    components       jsonb NOT NULL DEFAULT '[]',
    quality_rating   text CHECK (length(quality_rating) <= 32),
    -- A hash of what came from WhatsApp, so an unchanged template is not rewritten.
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id),
    UNIQUE (tenant_id, external_id)
);
-- The list: by status, then name and language; sends look a template up by name and language.
CREATE INDEX templates_by_status_name ON templates (tenant_id, status, name, language, id)
    WHERE deleted_at IS NULL;
CREATE INDEX templates_by_name ON templates (tenant_id, name, language) WHERE deleted_at IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['whatsapp_accounts', 'templates']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant())'
                       ' WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

-- template-sync must find the tenants to sync before it can act as one of them: this function
-- lists them and nothing else.
CREATE POLICY definer_functions ON whatsapp_accounts FOR SELECT TO CURRENT_USER USING (true);
CREATE FUNCTION whatsapp_account_tenants()
    RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT tenant_id FROM whatsapp_accounts ORDER BY tenant_id
    $$;
REVOKE ALL ON FUNCTION whatsapp_account_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_account_tenants() TO portal_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON whatsapp_accounts TO portal_app;
GRANT SELECT, INSERT, UPDATE ON templates TO portal_app;
