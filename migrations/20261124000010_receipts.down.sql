DROP TABLE pending_receipts;
