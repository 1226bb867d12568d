ALTER TABLE tenants
    DROP COLUMN agent_rate_limit_burst,
    DROP COLUMN agent_rate_limit_per_sec,
    DROP COLUMN rate_limit_burst,
    DROP COLUMN rate_limit_per_sec;
