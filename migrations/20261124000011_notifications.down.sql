DROP FUNCTION overdue_pending_receipts(interval, integer);
ALTER TABLE pending_receipts DROP COLUMN source;
DROP FUNCTION prune_processed_notifications(interval, integer);
DROP TABLE processed_notifications;
