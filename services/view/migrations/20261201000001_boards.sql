-- What the view has learnt from the other services' events, one table per kind of fact; the
-- boards are joined from them when read, so a name or title that arrives late simply appears.
-- Every column is set by the event that owns it and statuses only move forward (src/domain), so
-- events merge into the same rows whatever order they arrive in.

-- From user.events.
CREATE TABLE customers (
    id   UUID PRIMARY KEY,
    name TEXT NOT NULL
);

-- From book.events; a book first named by a rental event is a row with no details yet.
CREATE TABLE books (
    id         UUID    PRIMARY KEY,
    title      TEXT,
    author     TEXT,
    rental_fee INTEGER CHECK (rental_fee >= 0),
    retired    BOOLEAN NOT NULL DEFAULT false,
    CHECK ((title IS NULL) = (author IS NULL) AND (title IS NULL) = (rental_fee IS NULL))
);

-- From rental.events and payment.events, merged per rental.
CREATE TABLE rentals (
    id             UUID PRIMARY KEY,
    customer_id    UUID NOT NULL,
    book_id        UUID,
    rental_fee     INTEGER CHECK (rental_fee >= 0),
    payment_id     UUID,
    status         TEXT CHECK (status IN ('RENTED', 'RETURNED', 'CANCELLED')),
    payment_status TEXT CHECK (payment_status IN ('APPROVED', 'REFUNDED')),
    rented_at      TIMESTAMPTZ,
    due_at         TIMESTAMPTZ,
    returned_at    TIMESTAMPTZ,
    cancelled_at   TIMESTAMPTZ,
    refunded_at    TIMESTAMPTZ
);
-- A customer's board, and a book's rentals (current renter, times rented), in rental id order.
CREATE INDEX rentals_of_customer ON rentals (customer_id, id);
CREATE INDEX rentals_of_book ON rentals (book_id, id);
