-- Where rental and payment disagree, a readable line each; no row when they agree.
-- docs/design.md §3.4's invariant: no RENTED (or RETURNED, or EXPIRED) rental without an APPROVED
-- payment, no APPROVED payment without such a rental, and a CANCELLED rental's payment REFUNDED.
-- Needs the rental and payment schemas in one database. rental's tests, the gateway's chaos
-- matrix and the cluster scenarios (siege) all run this one statement.
SELECT format('rental %s is %s but its payment is %s', r.id, r.status, coalesce(p.status, 'missing'))
FROM rental.rentals r LEFT JOIN payment.payments p ON p.rental_id = r.id
WHERE (r.status IN ('RENTED', 'RETURNED', 'EXPIRED') AND p.status IS DISTINCT FROM 'APPROVED')
   OR (r.status = 'CANCELLED' AND p.status IS DISTINCT FROM 'REFUNDED')
UNION ALL
SELECT format('payment %s is APPROVED but rental %s is %s', p.id, p.rental_id, coalesce(r.status, 'missing'))
FROM payment.payments p LEFT JOIN rental.rentals r ON r.id = p.rental_id
WHERE p.status = 'APPROVED' AND r.status IS DISTINCT FROM 'RENTED' AND r.status IS DISTINCT FROM 'RETURNED'
  AND r.status IS DISTINCT FROM 'EXPIRED'
