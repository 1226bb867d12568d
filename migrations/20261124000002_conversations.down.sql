DROP TABLE conversation_assignments;
DROP TYPE assignment_kind;
DROP TABLE conversations;
DROP TYPE conversation_state;
DROP TABLE customer_search_terms;
DROP TABLE customers;
DROP FUNCTION customer_search_terms_refresh();
DROP FUNCTION customer_search_suffixes(text);
