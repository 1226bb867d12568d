-- Roles for the docker-compose stack. The postgres image runs this once, on an empty data
-- directory (it is mounted into /docker-entrypoint-initdb.d), as POSTGRES_USER in
-- POSTGRES_DB=portal.
--
-- DEVELOPMENT ONLY: the password below is public, written in this repository. Never use it, or
-- this file, anywhere but a local docker-compose stack.
--
-- * portal_app: the group role every migration grants to; NOLOGIN, owns nothing. Migration 1
--   creates it only when missing, so creating it here first is fine.
-- * portal_api: the login role the services connect as: a member of portal_app and nothing
--   else, no superuser, no BYPASSRLS, so row-level security is in force for it (`api serve`
--   refuses to start as a superuser or a BYPASSRLS role). Same attributes as the role
--   `dev` provisions (shared/src/db.rs, `provision`), plus a password.
--
-- The schema owner is the postgres superuser: the `migrate` and `demo-data` services connect
-- as it (POSTGRES_PASSWORD in docker-compose.yml).
--
-- The password must match PORTAL__DATABASE__URL in docker-compose.yml (x-portal-env). Changing
-- it here does nothing to an existing volume: `docker compose down -v` first.

\set ON_ERROR_STOP on

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portal_app') THEN
        CREATE ROLE portal_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portal_api') THEN
        CREATE ROLE portal_api LOGIN PASSWORD 'portal-api-dev-only'
            NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE portal_app;
    END IF;
END
$$;
