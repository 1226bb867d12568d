-- Tenants and agents, and the row-level-security plumbing every tenant table uses.
--
-- The services connect as a login role that is a member of `portal_app`: it owns nothing and
-- has no BYPASSRLS, so every policy below is in force for it. Migrations run as the owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portal_app') THEN
        CREATE ROLE portal_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION
    -- Another database of the same cluster created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO portal_app;

-- The tenant of the current transaction, or NULL when none was set. A pooled connection that
-- once set `app.tenant_id` reads back '' afterwards, hence the NULLIF: no tenant means no rows.
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

GRANT EXECUTE ON FUNCTION app_current_tenant() TO portal_app;

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE agent_role AS ENUM ('agent', 'supervisor', 'admin');

CREATE TABLE agents (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    email        text,
    role         agent_role NOT NULL DEFAULT 'agent',
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id)
);
-- The transfer picker lists a tenant's agents by name.
CREATE INDEX agents_by_name ON agents (tenant_id, display_name, id);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = app_current_tenant()) WITH CHECK (id = app_current_tenant());

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- Tenants are provisioned by operators, not by the services.
GRANT SELECT ON tenants TO portal_app;
GRANT SELECT, INSERT, UPDATE ON agents TO portal_app;
