CREATE INDEX conversations_by_customer ON conversations (tenant_id, customer_id);
DROP INDEX conversations_by_customer_created;
