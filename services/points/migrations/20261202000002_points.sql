-- What points learns from rental.events. A rental's end does not say what it cost, so every
-- rental seen starting is remembered with its fee; a completed rental earns one ledger row, and
-- the customer's balance grows in the same transaction.

-- Rentals seen starting (BookRented), and where they are. Kept after they end, so that a late
-- copy of an event finds the rental already cancelled or credited.
CREATE TABLE rentals (
    rental_id  UUID   PRIMARY KEY,
    user_id    UUID   NOT NULL,
    -- A fee is a u32: wider than INTEGER.
    rental_fee BIGINT NOT NULL CHECK (rental_fee >= 0),
    state      TEXT   NOT NULL CHECK (state IN ('RENTED', 'CANCELLED', 'COMPLETED'))
);

-- One row per credited rental: the primary key is what makes a second credit impossible.
CREATE TABLE ledger (
    rental_id  UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL,
    book_id    UUID        NOT NULL,
    rental_fee BIGINT      NOT NULL CHECK (rental_fee >= 0),
    points     BIGINT      NOT NULL CHECK (points >= 0),
    reason     TEXT        NOT NULL CHECK (reason IN ('RETURNED', 'EXPIRED')),
    -- When the rental completed.
    earned_at  TIMESTAMPTZ NOT NULL
);
-- A customer's history, newest first.
CREATE INDEX ledger_of_customer ON ledger (user_id, earned_at DESC, rental_id DESC);

-- Each customer's balance: the sum of their ledger rows, kept by the transaction that adds one.
CREATE TABLE balances (
    user_id UUID   PRIMARY KEY,
    points  BIGINT NOT NULL CHECK (points >= 0)
);
