ALTER FUNCTION search_messages(text, uuid) ROWS 1000;
