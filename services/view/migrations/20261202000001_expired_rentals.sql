-- A rental whose period ran out is EXPIRED on the board (BookReturned with reason EXPIRED).
ALTER TABLE rentals DROP CONSTRAINT rentals_status_check;
ALTER TABLE rentals ADD CONSTRAINT rentals_status_check
    CHECK (status IN ('RENTED', 'RETURNED', 'EXPIRED', 'CANCELLED'));
