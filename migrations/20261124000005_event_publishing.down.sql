DROP FUNCTION mark_events_published(uuid[], bigint[]);
DROP FUNCTION claim_unpublished_events(interval, integer);
DROP POLICY definer_functions ON events;
