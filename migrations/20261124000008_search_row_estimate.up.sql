-- The planner assumed 1,000 rows from search_messages, so for an agent it hashed every message
-- of the agent's visible conversations (59,000 in the 1 M-message benchmark) to join a handful
-- of matches: 21 ms for a rare word. Telling it to expect few rows makes it look up each match
-- instead (1.2 ms), so a search costs in proportion to its matches, for agents and supervisors
-- alike. See docs/performance.md.
ALTER FUNCTION search_messages(text, uuid) ROWS 50;
