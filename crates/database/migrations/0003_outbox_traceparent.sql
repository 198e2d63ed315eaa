-- The trace an event belongs to, sent as a Kafka header so consumers continue it.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
