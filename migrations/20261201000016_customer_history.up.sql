-- A customer's interaction history, newest first, a page at a time: the customer's
-- conversations in creation order. It replaces the index on (tenant_id, customer_id), which is
-- its prefix. Building it holds a write lock on conversations while it runs (about a second
-- per million conversations on 2 cores): run the migration at a quiet hour.
CREATE INDEX conversations_by_customer_created ON conversations (tenant_id, customer_id, created_at, id);
DROP INDEX conversations_by_customer;
