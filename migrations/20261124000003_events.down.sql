DROP TABLE events;
DROP TABLE tenant_event_counters;
