DROP TABLE agents;
DROP TYPE agent_role;
DROP TABLE tenants;
DROP FUNCTION app_current_tenant();
REVOKE USAGE ON SCHEMA public FROM portal_app;
-- The role is cluster-wide and may serve other databases; it is left in place.
