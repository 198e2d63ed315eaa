-- Failed sign-ins per attempted email, known account or not (so a lock-out tells nothing about
-- which accounts exist). The key is a SHA-256 of the lower-cased address: an attacker's list
-- of addresses is not kept in clear. Rows outlive their window briefly; a task deletes them.
CREATE TABLE sign_in_failures (
    attempt_key     TEXT        PRIMARY KEY,
    failures        INTEGER     NOT NULL CHECK (failures > 0),
    first_failed_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ
);
CREATE INDEX sign_in_failures_first_failed_at ON sign_in_failures (first_failed_at);
