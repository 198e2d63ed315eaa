CREATE TABLE books (
    id                UUID        PRIMARY KEY,
    title             TEXT        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    author            TEXT        NOT NULL CHECK (length(author) BETWEEN 1 AND 200),
    rental_fee        INTEGER     NOT NULL CHECK (rental_fee BETWEEN 0 AND 1000000),
    status            TEXT        NOT NULL CHECK (status IN ('AVAILABLE', 'RENTED', 'RETIRED')),
    current_rental_id UUID,
    times_rented      INTEGER     NOT NULL DEFAULT 0 CHECK (times_rented >= 0),
    registered_at     TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
