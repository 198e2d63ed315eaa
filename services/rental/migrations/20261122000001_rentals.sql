-- The replica of book-management's catalogue, kept from book.events, so renting works while
-- book-management is down.
CREATE TABLE catalogue (
    book_id    UUID        PRIMARY KEY,
    title      TEXT        NOT NULL,
    rental_fee INTEGER     NOT NULL CHECK (rental_fee BETWEEN 0 AND 1000000),
    retired    BOOLEAN     NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE rentals (
    id                UUID        PRIMARY KEY,
    book_id           UUID        NOT NULL REFERENCES catalogue (book_id),
    user_id           UUID        NOT NULL,
    rental_fee        INTEGER     NOT NULL CHECK (rental_fee BETWEEN 0 AND 1000000),
    status            TEXT        NOT NULL CHECK (status IN ('PAYMENT_PENDING', 'RENTED', 'RETURNED', 'CANCELLED', 'PAYMENT_FAILED')),
    payment_id        UUID,
    -- The payment call ended without an answer (timeout, crash): payment may hold a payment
    -- that the reconciler must find and refund.
    payment_unsettled BOOLEAN     NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL,
    rented_at         TIMESTAMPTZ,
    due_at            TIMESTAMPTZ,
    cancelled_at      TIMESTAMPTZ,
    returned_at       TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL,
    CHECK (status NOT IN ('RENTED', 'RETURNED', 'CANCELLED') OR (payment_id IS NOT NULL AND rented_at IS NOT NULL AND due_at IS NOT NULL))
);

-- Double booking is impossible: one book, at most one rental being paid for or running.
CREATE UNIQUE INDEX rentals_one_active_per_book ON rentals (book_id) WHERE status IN ('PAYMENT_PENDING', 'RENTED');
-- The reconciler's work list.
CREATE INDEX rentals_unsettled ON rentals (updated_at) WHERE status = 'PAYMENT_PENDING' OR payment_unsettled;
