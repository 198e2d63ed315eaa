-- A rent sent again with the same Idempotency-Key gets the rental the first one made. The key
-- belongs to its customer; a rent that failed (PAYMENT_FAILED) frees it, so that trying again
-- with it can succeed.
ALTER TABLE rentals ADD COLUMN idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX rentals_idempotency_key ON rentals (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status <> 'PAYMENT_FAILED';
