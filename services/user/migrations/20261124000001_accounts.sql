-- Customers and managers. The unique index over lower(email) is what makes a second account
-- for one address impossible, whatever its case and however many registrations race.
CREATE TABLE accounts (
    id             UUID        PRIMARY KEY,
    name           TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    email          TEXT        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    -- An Argon2id PHC string; the password itself is never stored.
    password_hash  TEXT        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role           TEXT        NOT NULL CHECK (role IN ('CUSTOMER', 'MANAGER')),
    -- Kept from rental.events: rented and not yet returned or cancelled.
    active_rentals INTEGER     NOT NULL DEFAULT 0 CHECK (active_rentals >= 0),
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX accounts_email_unique ON accounts (lower(email));
