-- Retention deletes the oldest sent outbox rows and processed inbox rows in small batches; these
-- indexes let each batch find them without scanning the table.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX inbox_processed_at ON inbox (processed_at);
