-- Per-tenant REST rate limits (requests per second, and the burst allowed above it), for the
-- tenant as a whole and for each of its agents; NULL takes the configured default
-- (rate_limit.*). Set by operators.
ALTER TABLE tenants
    ADD COLUMN rate_limit_per_sec       integer CHECK (rate_limit_per_sec BETWEEN 1 AND 100000),
    ADD COLUMN rate_limit_burst         integer CHECK (rate_limit_burst BETWEEN 1 AND 1000000),
    ADD COLUMN agent_rate_limit_per_sec integer CHECK (agent_rate_limit_per_sec BETWEEN 1 AND 100000),
    ADD COLUMN agent_rate_limit_burst   integer CHECK (agent_rate_limit_burst BETWEEN 1 AND 1000000);
