-- Idempotent consumer: one row per processed event id, written in the effect's transaction.
CREATE TABLE inbox (
    event_id     UUID        PRIMARY KEY,
    topic        TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
