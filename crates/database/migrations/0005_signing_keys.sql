-- The signing keys last fetched from the user service, so that a replica started while it is
-- away still checks tokens (and becomes ready) with them.
CREATE TABLE signing_keys (
    singleton  BOOLEAN     PRIMARY KEY DEFAULT true CHECK (singleton),
    jwks       JSONB       NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
