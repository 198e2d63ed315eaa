-- Rentals end by themselves at their due date (EXPIRED), and a customer holds a bounded number
-- of active rentals.
ALTER TABLE rentals DROP CONSTRAINT rentals_status_check;
ALTER TABLE rentals ADD CONSTRAINT rentals_status_check
    CHECK (status IN ('PAYMENT_PENDING', 'RENTED', 'RETURNED', 'EXPIRED', 'CANCELLED', 'PAYMENT_FAILED'));
ALTER TABLE rentals DROP CONSTRAINT rentals_check;
ALTER TABLE rentals ADD CONSTRAINT rentals_check
    CHECK (status NOT IN ('RENTED', 'RETURNED', 'EXPIRED', 'CANCELLED') OR (payment_id IS NOT NULL AND rented_at IS NOT NULL AND due_at IS NOT NULL));

-- The expiry task's work list: running rentals by due date.
CREATE INDEX rentals_due ON rentals (due_at) WHERE status = 'RENTED';
-- A customer's active rentals, counted when they rent.
CREATE INDEX rentals_active_by_customer ON rentals (user_id) WHERE status IN ('PAYMENT_PENDING', 'RENTED');
