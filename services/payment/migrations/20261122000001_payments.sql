-- One payment per rental: the rental id is the idempotency key of POST /payments, so a retried
-- or concurrent request finds the payment already made instead of charging twice.
CREATE TABLE payments (
    id          UUID        PRIMARY KEY,
    rental_id   UUID        NOT NULL UNIQUE,
    user_id     UUID        NOT NULL,
    amount      INTEGER     NOT NULL CHECK (amount BETWEEN 0 AND 1000000),
    status      TEXT        NOT NULL CHECK (status IN ('APPROVED', 'DECLINED', 'REFUNDED')),
    created_at  TIMESTAMPTZ NOT NULL,
    refunded_at TIMESTAMPTZ,
    -- A refund time exactly when refunded, and never before the payment.
    CONSTRAINT refunded_when_refunded CHECK ((status = 'REFUNDED') = (refunded_at IS NOT NULL)),
    CONSTRAINT refunded_after_created CHECK (refunded_at IS NULL OR refunded_at >= created_at)
);
