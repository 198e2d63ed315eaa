-- One canonical form of an address, computed by the service (see EmailKey) and stored, so that
-- lookup, uniqueness and the counting of failed sign-ins agree whatever the server's collation.
-- lower() is that form for every ASCII address; the service rewrites the others at start.
ALTER TABLE accounts ADD COLUMN email_key TEXT;
UPDATE accounts SET email_key = lower(email);
ALTER TABLE accounts ALTER COLUMN email_key SET NOT NULL;
DROP INDEX accounts_email_unique;
CREATE UNIQUE INDEX accounts_email_key_unique ON accounts (email_key);

-- Failed sign-ins were counted per address alone, so a stranger's guesses locked the owner out.
-- Now: per address and client for the hard stop, per address for a growing delay. An attempt is
-- counted before its password is checked (and taken back if it succeeds), in one statement, so
-- concurrent guesses cannot pass together. Keys are SHA-256 of the canonical address: a list of
-- addresses tried is not kept in clear. Rows outlive their window briefly; a task deletes them.
DROP TABLE sign_in_failures;
CREATE TABLE sign_in_guesses (
    address_key     TEXT        NOT NULL,
    -- An IPv4 address or an IPv6 /64 network, as the gateway names the client.
    client          TEXT        NOT NULL,
    failures        INTEGER     NOT NULL CHECK (failures >= 0),
    first_failed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (address_key, client)
);
CREATE INDEX sign_in_guesses_first_failed_at ON sign_in_guesses (first_failed_at);

CREATE TABLE sign_in_pressure (
    address_key     TEXT        PRIMARY KEY,
    failures        INTEGER     NOT NULL CHECK (failures >= 0),
    first_failed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sign_in_pressure_first_failed_at ON sign_in_pressure (first_failed_at);
