DROP FUNCTION prune_events(interval, integer);
DROP INDEX events_by_age;
