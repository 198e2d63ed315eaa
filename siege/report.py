"""`siege/run report`: the fleet's figures on this machine, in one run, as siege/results/latest.md.

One local fleet (release build, one replica each, on a real Apache Kafka broker unless --kafka
mock) is started; then, in order:
1. idle RSS of every process, the Kafka broker's JVM included;
2. rent → return cycles through the gateway with siege (50 users): rents/s, returns/s, cycles/s,
   p50/p99 as siege saw them (10 ms steps) and as the gateway logged them (microseconds), and
   the event → board lag the view logged for every event those cycles made;
3. the same cycles straight against rental: the gateway's cost as ratios;
4. the same Postgres work as bare SQL with pgbench (prepared, 50 clients), twice: rental's and
   payment's main statements of a rent and a return (the ceiling), and every statement the fleet
   runs for a cycle, outbox relays and consumers included (the fair ceiling); each as a ratio;
5. loaded RSS (the highest seen during 2 and 3);
6. the event → board lag again under a steady load the machine keeps up with (about 100 rents/s);
7. each process restarted (SIGTERM) and timed from its start to ready.
Then that fleet stops and a second one starts on librdkafka's mock broker, where 2 (through the
gateway only) and 6 run again: what real Kafka costs, side by side with the mock.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

from importlib.machinery import SourceFileLoader
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The runner (siege/run) imports this module after registering itself as siege_run.
run = sys.modules.get("siege_run") or SourceFileLoader("siege_run", str(HERE / "run")).load_module()

USERS = 50
# The Kafka broker's row in the RSS tables.
KAFKA = "kafka broker (JVM)"
# The steady load for the event → board lag: 25 users who think 0–0.5 s, about 100 rents/s.
STEADY = {"users": 25, "delay": 0.5, "seconds": 20}
PGBENCH_SECONDS = 20
# A rent and a return as rental and payment run them (see their adapters/postgres.rs), on copies
# of their tables: the book lookup, the rental opened, the payment and its event, the rental
# marked rented with its event; the ownership check and the return with its event.
PGBENCH_SCRIPT = """\
-- pgbench: the cycle's ids (not a statement of the fleet's)
SELECT gen_random_uuid() AS rental_id, gen_random_uuid() AS payment_id, gen_random_uuid() AS user_id \\gset
-- rental and payment: a rent and a return
SELECT book_id, title, rental_fee, retired FROM pgbench_rent.catalogue WHERE book_id = ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid;
INSERT INTO pgbench_rent.rentals (id, book_id, user_id, rental_fee, status, created_at, updated_at) VALUES (:rental_id, ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, :user_id, 300, 'PAYMENT_PENDING', now(), now());
BEGIN;
INSERT INTO pgbench_rent.payments (id, rental_id, user_id, amount, status, created_at) VALUES (:payment_id, :rental_id, :user_id, 300, 'APPROVED', now()) ON CONFLICT (rental_id) DO NOTHING;
INSERT INTO pgbench_rent.payment_outbox (event_id, topic, key, payload, traceparent) VALUES (gen_random_uuid(), 'payment.events', :rental_id, '{PAYLOAD}', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
COMMIT;
BEGIN;
UPDATE pgbench_rent.rentals SET status = 'RENTED', payment_id = :payment_id, rented_at = now(), due_at = now() + interval '14 days', updated_at = now() WHERE id = :rental_id AND status = 'PAYMENT_PENDING';
INSERT INTO pgbench_rent.rental_outbox (event_id, topic, key, payload, traceparent) VALUES (gen_random_uuid(), 'rental.events', :rental_id, '{PAYLOAD}', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
COMMIT;
SELECT * FROM pgbench_rent.rentals WHERE id = :rental_id;
BEGIN;
SELECT * FROM pgbench_rent.rentals WHERE id = :rental_id FOR UPDATE;
UPDATE pgbench_rent.rentals SET status = 'RETURNED', cancelled_at = NULL, returned_at = now(), updated_at = now() WHERE id = :rental_id;
INSERT INTO pgbench_rent.rental_outbox (event_id, topic, key, payload, traceparent) VALUES (gen_random_uuid(), 'rental.events', :rental_id, '{PAYLOAD}', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
COMMIT;
"""
# About the size of a BookRented CloudEvent.
PAYLOAD = json.dumps({
    "specversion": "1.0", "id": "5d0c9f5e-6b1a-4c8e-9d52-3f1f0c6f7a10", "type": "BookRented",
    "source": "rental", "subject": "8a3e2b44-9d6f-4d1e-a5c0-1f2b3c4d5e6f",
    "time": "2026-11-22T10:00:00.000000Z", "datacontenttype": "application/json",
    "correlationid": "8a3e2b44-9d6f-4d1e-a5c0-1f2b3c4d5e6f",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "data": {"rentalId": "8a3e2b44-9d6f-4d1e-a5c0-1f2b3c4d5e6f",
             "bookId": "00000000-0000-4000-8000-000000000001",
             "userId": "6f1e2d3c-4b5a-4968-8776-655443322110", "rentalFee": 300,
             "paymentId": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
             "rentedAt": "2026-11-22T10:00:00Z", "dueAt": "2026-12-06T10:00:00Z"}})


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# One rental's ids, for events of the right size.
RENTAL, BOOK, CUSTOMER, PAYMENT = ("0193a6f2-7c4e-7b1d-9f3a-2c5e8d1b4a60", "0193a6e1-2a3b-7c4d-9e5f-60718293a4b5",
                                   "0193a6e0-1b2c-7d3e-8f40-5a6b7c8d9e0f", "0193a6f2-7d10-7e2a-8b4c-5d6e7f809a1b")
AT, DUE = "2026-11-22T10:00:00.123456Z", "2026-12-06T10:00:00.123456Z"


def cloud_event(event_type, source, subject, data):
    """An event as `outbox::enqueue` writes it: `data` in its CloudEvent envelope."""
    return json.dumps({
        "specversion": "1.0", "id": "5d0c9f5e-6b1a-4c8e-9d52-3f1f0c6f7a10", "type": event_type,
        "source": source, "subject": subject, "time": AT, "datacontenttype": "application/json",
        "correlationid": RENTAL, "traceparent": TRACEPARENT, "data": data})


# The fair ceiling: every statement the fleet runs against Postgres for one rent and one return
# made through the gateway (the gateway gives the rent an Idempotency-Key), on copies of the
# tables they touch, in the same transactions, order and locking:
# - rental (adapters/postgres.rs): the catalogue lookup; the rental opened in a transaction that
#   takes the customer's turn (an advisory lock) and inserts with the active-rentals count as the
#   limit and the Idempotency-Key as the ON CONFLICT arbiter; the payment outcome with BookRented;
#   the ownership check, then the return (row locked) with BookReturned;
# - payment: the lookup by rental (a retry is answered from it), then the payment with
#   PaymentApproved;
# - the consumers (kit/src/inbox.rs: the inbox row and the effect in one transaction, the inbox
#   row also for an event the handler ignores): rental.events reach payment (inbox only: it acts
#   on cancels), book-management (the book locked and saved), user (the account locked and its
#   count saved), points (the rental remembered; on return locked, completed and credited) and
#   view (the book noted, the rental row inserted, locked and saved); payment.events reach view
#   alone;
# - the outbox relays, in scripts of their own (FAIR_RELAY_SCRIPT).
# The services bind their values; constants are written in, as the first script does. Each
# pgbench client rents its own book as its own customer, so the ceiling is not bound by locks of
# the script's making. Times the services' clocks give are the cycle's start here.
FAIR_CYCLE_SCRIPT = """\
-- pgbench: the cycle's ids and times, which the services make themselves (rentals and
-- payments UUIDv7, events and the gateway's Idempotency-Key UUIDv4); not a statement of the fleet's
\\set max_active 1000000
SELECT (substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16))::uuid AS rental_id,
    (substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16))::uuid AS payment_id,
    gen_random_uuid()::text AS idempotency_key, gen_random_uuid() AS approved_event,
    gen_random_uuid() AS rented_event, gen_random_uuid() AS returned_event,
    ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid AS book_id,
    ('00000000-0000-4000-9000-' || lpad(:client_id::text, 12, '0'))::uuid AS user_id,
    'Siege ' || :client_id AS title, now() AS at, now() + interval '14 days' AS due_at
    FROM (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') AS ms) AS t \\gset
-- rental: rent, the catalogue lookup
SELECT book_id, title, rental_fee, retired FROM {rental}.catalogue WHERE book_id = :book_id;
-- rental: rent, the rental opened (the customer's turn, the limit, the Idempotency-Key)
BEGIN;
SELECT pg_advisory_xact_lock(1, hashtext(:user_id::uuid::text));
INSERT INTO {rental}.rentals (id, book_id, user_id, rental_fee, status, created_at, updated_at, idempotency_key)
    SELECT :rental_id::uuid, :book_id::uuid, :user_id::uuid, 300, 'PAYMENT_PENDING', :at::timestamptz, now(), :idempotency_key::text
    WHERE (SELECT count(*) FROM {rental}.rentals
           WHERE user_id = :user_id AND status IN ('PAYMENT_PENDING', 'RENTED')) < :max_active
    ON CONFLICT (user_id, idempotency_key)
       WHERE idempotency_key IS NOT NULL AND status <> 'PAYMENT_FAILED' DO NOTHING;
COMMIT;
-- payment: the payment call, a retry looked up first
SELECT id, rental_id, user_id, amount, status, created_at, refunded_at FROM {payment}.payments WHERE rental_id = :rental_id;
-- payment: the payment call, the payment and PaymentApproved
BEGIN;
INSERT INTO {payment}.payments (id, rental_id, user_id, amount, status, created_at)
    VALUES (:payment_id, :rental_id, :user_id, 300, 'APPROVED', :at) ON CONFLICT (rental_id) DO NOTHING;
INSERT INTO {payment}.outbox (event_id, topic, key, payload, traceparent)
    VALUES (:approved_event, 'payment.events', :rental_id, :approved_payload, :traceparent);
COMMIT;
-- rental: rent, the payment outcome and BookRented
BEGIN;
UPDATE {rental}.rentals SET status = 'RENTED', payment_id = :payment_id, rented_at = :at, due_at = :due_at, updated_at = now()
    WHERE id = :rental_id AND status = 'PAYMENT_PENDING';
INSERT INTO {rental}.outbox (event_id, topic, key, payload, traceparent)
    VALUES (:rented_event, 'rental.events', :book_id, :rented_payload, :traceparent);
COMMIT;
-- view: PaymentApproved
BEGIN;
INSERT INTO {view}.inbox (event_id, topic, event_type) VALUES (:approved_event, 'payment.events', 'PaymentApproved') ON CONFLICT DO NOTHING;
INSERT INTO {view}.rentals (id, customer_id) VALUES (:rental_id, :user_id) ON CONFLICT DO NOTHING;
SELECT {view_rental_columns} FROM {view}.rentals r WHERE r.id = :rental_id FOR UPDATE;
UPDATE {view}.rentals SET book_id = NULL, rental_fee = NULL, payment_id = :payment_id, status = NULL,
    payment_status = 'APPROVED', rented_at = NULL, due_at = NULL, returned_at = NULL, cancelled_at = NULL,
    refunded_at = NULL WHERE id = :rental_id;
COMMIT;
-- payment: BookRented (ignored: the inbox row alone)
BEGIN;
INSERT INTO {payment}.inbox (event_id, topic, event_type) VALUES (:rented_event, 'rental.events', 'BookRented') ON CONFLICT DO NOTHING;
COMMIT;
-- book-management: BookRented
BEGIN;
INSERT INTO {book}.inbox (event_id, topic, event_type) VALUES (:rented_event, 'rental.events', 'BookRented') ON CONFLICT DO NOTHING;
SELECT {book_columns} FROM {book}.books WHERE id = :book_id FOR UPDATE \\gset book_
\\set times_rented :book_times_rented + 1
UPDATE {book}.books SET title = :title, author = 'Load', rental_fee = 300, status = 'RENTED', current_rental_id = :rental_id,
    times_rented = :times_rented, updated_at = :at WHERE id = :book_id;
COMMIT;
-- user: BookRented
BEGIN;
INSERT INTO {users}.inbox (event_id, topic, event_type) VALUES (:rented_event, 'rental.events', 'BookRented') ON CONFLICT DO NOTHING;
SELECT {account_columns} FROM {users}.accounts WHERE id = :user_id FOR UPDATE \\gset account_
\\set active_rentals :account_active_rentals + 1
UPDATE {users}.accounts SET active_rentals = :active_rentals WHERE id = :user_id;
COMMIT;
-- points: BookRented
BEGIN;
INSERT INTO {points}.inbox (event_id, topic, event_type) VALUES (:rented_event, 'rental.events', 'BookRented') ON CONFLICT DO NOTHING;
INSERT INTO {points}.rentals (rental_id, user_id, rental_fee, state) VALUES (:rental_id, :user_id, 300, 'RENTED')
    ON CONFLICT (rental_id) DO NOTHING;
COMMIT;
-- view: BookRented
BEGIN;
INSERT INTO {view}.inbox (event_id, topic, event_type) VALUES (:rented_event, 'rental.events', 'BookRented') ON CONFLICT DO NOTHING;
INSERT INTO {view}.books (id) VALUES (:book_id) ON CONFLICT DO NOTHING;
INSERT INTO {view}.rentals (id, customer_id) VALUES (:rental_id, :user_id) ON CONFLICT DO NOTHING;
SELECT {view_rental_columns} FROM {view}.rentals r WHERE r.id = :rental_id FOR UPDATE;
UPDATE {view}.rentals SET book_id = :book_id, rental_fee = 300, payment_id = :payment_id, status = 'RENTED',
    payment_status = 'APPROVED', rented_at = :at, due_at = :due_at, returned_at = NULL, cancelled_at = NULL,
    refunded_at = NULL WHERE id = :rental_id;
COMMIT;
-- rental: return, the ownership check
SELECT {rental_columns} FROM {rental}.rentals WHERE id = :rental_id;
-- rental: return, the rental locked and returned, and BookReturned
BEGIN;
SELECT {rental_columns} FROM {rental}.rentals WHERE id = :rental_id FOR UPDATE;
UPDATE {rental}.rentals SET status = 'RETURNED', cancelled_at = NULL, returned_at = :at, updated_at = now() WHERE id = :rental_id;
INSERT INTO {rental}.outbox (event_id, topic, key, payload, traceparent)
    VALUES (:returned_event, 'rental.events', :book_id, :returned_payload, :traceparent);
COMMIT;
-- payment: BookReturned (ignored: the inbox row alone)
BEGIN;
INSERT INTO {payment}.inbox (event_id, topic, event_type) VALUES (:returned_event, 'rental.events', 'BookReturned') ON CONFLICT DO NOTHING;
COMMIT;
-- book-management: BookReturned
BEGIN;
INSERT INTO {book}.inbox (event_id, topic, event_type) VALUES (:returned_event, 'rental.events', 'BookReturned') ON CONFLICT DO NOTHING;
SELECT {book_columns} FROM {book}.books WHERE id = :book_id FOR UPDATE \\gset book_
UPDATE {book}.books SET title = :title, author = 'Load', rental_fee = 300, status = 'AVAILABLE', current_rental_id = NULL,
    times_rented = :book_times_rented, updated_at = :at WHERE id = :book_id;
COMMIT;
-- user: BookReturned
BEGIN;
INSERT INTO {users}.inbox (event_id, topic, event_type) VALUES (:returned_event, 'rental.events', 'BookReturned') ON CONFLICT DO NOTHING;
SELECT {account_columns} FROM {users}.accounts WHERE id = :user_id FOR UPDATE \\gset account_
\\set active_rentals :account_active_rentals - 1
UPDATE {users}.accounts SET active_rentals = :active_rentals WHERE id = :user_id;
COMMIT;
-- points: BookReturned
BEGIN;
INSERT INTO {points}.inbox (event_id, topic, event_type) VALUES (:returned_event, 'rental.events', 'BookReturned') ON CONFLICT DO NOTHING;
SELECT rental_id, user_id, rental_fee, state FROM {points}.rentals WHERE rental_id = :rental_id FOR UPDATE;
UPDATE {points}.rentals SET state = 'COMPLETED' WHERE rental_id = :rental_id;
WITH credited AS (
        INSERT INTO {points}.ledger (rental_id, user_id, book_id, rental_fee, points, reason, earned_at)
        VALUES (:rental_id, :user_id, :book_id, 300, 30, 'RETURNED', :at) ON CONFLICT (rental_id) DO NOTHING
        RETURNING user_id, points)
    INSERT INTO {points}.balances (user_id, points) SELECT user_id, points FROM credited
    ON CONFLICT (user_id) DO UPDATE SET points = balances.points + EXCLUDED.points;
COMMIT;
-- view: BookReturned
BEGIN;
INSERT INTO {view}.inbox (event_id, topic, event_type) VALUES (:returned_event, 'rental.events', 'BookReturned') ON CONFLICT DO NOTHING;
INSERT INTO {view}.books (id) VALUES (:book_id) ON CONFLICT DO NOTHING;
INSERT INTO {view}.rentals (id, customer_id) VALUES (:rental_id, :user_id) ON CONFLICT DO NOTHING;
SELECT {view_rental_columns} FROM {view}.rentals r WHERE r.id = :rental_id FOR UPDATE;
UPDATE {view}.rentals SET book_id = :book_id, rental_fee = 300, payment_id = :payment_id, status = 'RETURNED',
    payment_status = 'APPROVED', rented_at = :at, due_at = :due_at, returned_at = :at, cancelled_at = NULL,
    refunded_at = NULL WHERE id = :rental_id;
COMMIT;
"""
# One pass of a service's outbox relay (kit/src/outbox.rs `Relay::relay_batch`): its turn (an
# advisory lock per schema, kit/src/db.rs `take_turn`; another pass holding it makes this one
# roll back, as a second replica's would), the pending events, up to OUTBOX_BATCH_SIZE (500),
# marked sent, and the backlog left, in one transaction; a pass that finds nothing rolls back.
# The fleet marks the ids it published (`id = ANY($1)`); pgbench cannot carry a result set into
# the next statement, so here the pass marks what is pending up to the last id it read (the same
# rows). The turn's key is made as the service's (`current_schema()` its schema), from the copy's
# schema: a fleet still running keeps its own turns.
FAIR_RELAY_SCRIPT = """\
-- outbox relay: {service}
\\set outbox_batch_size 500
\\set pending_id 0
BEGIN;
SELECT pg_try_advisory_xact_lock(hashtext('{copy}' || '.' || 'outbox-relay')) AS turn \\gset
\\if :turn
SELECT id, topic, key, payload, traceparent FROM {copy}.outbox WHERE sent_at IS NULL ORDER BY id LIMIT :outbox_batch_size \\aset pending_
\\endif
\\if :pending_id > 0
UPDATE {copy}.outbox SET sent_at = now() WHERE sent_at IS NULL AND id <= :pending_id;
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM {copy}.outbox WHERE sent_at IS NULL;
COMMIT;
\\else
ROLLBACK;
\\endif
"""
# How many events a relay pass publishes, which is what a cycle's share of the passes follows
# from: the report weighs the passes as the fleet's relays made them in the gateway's cycles
# (outbox_pass_events); this is the fallback when a relay's metrics say nothing.
RELAY_EVENTS_PER_PASS = 32
# The fleet's schemas (scripts/lib/postgres.sh) and the tables of each that a cycle touches,
# copied empty into pgbench_fair_<schema>; the services that own them.
FAIR_TABLES = {
    "rental": ["catalogue", "rentals", "outbox"],
    "payment": ["payments", "outbox", "inbox"],
    "book": ["books", "inbox"],
    "users": ["accounts", "inbox"],
    "points": ["rentals", "ledger", "balances", "inbox"],
    "view": ["books", "rentals", "inbox"],
}
SERVICES = {"rental": "rental", "payment": "payment", "book": "book-management", "users": "user",
            "points": "points", "view": "view"}
# An Argon2id PHC string of the usual length, for user's accounts.
PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2llZ2Vfc2FsdF9zYWx0$VGhlIGZsZWV0J3MgaGFzaCwgYWJvdXQgaXRzIGxlbmd0aA"
FAIR_PAYLOADS = {
    "approved_payload": cloud_event("PaymentApproved", "payment", PAYMENT, {
        "paymentId": PAYMENT, "rentalId": RENTAL, "userId": CUSTOMER, "amount": 300, "approvedAt": AT}),
    "rented_payload": cloud_event("BookRented", "rental", RENTAL, {
        "rentalId": RENTAL, "bookId": BOOK, "userId": CUSTOMER, "rentalFee": 300, "paymentId": PAYMENT,
        "rentedAt": AT, "dueAt": DUE}),
    "returned_payload": cloud_event("BookReturned", "rental", RENTAL, {
        "rentalId": RENTAL, "bookId": BOOK, "userId": CUSTOMER, "returnedAt": AT, "reason": "RETURNED"}),
    "traceparent": TRACEPARENT,
}


def copy_of(schema):
    return f"pgbench_fair_{schema}"


# Values the fair cycle makes afresh for each cycle: a script of several cycles gives each its own.
PER_CYCLE = ("rental_id", "payment_id", "idempotency_key", "approved_event", "rented_event",
             "returned_event", "at", "due_at")


def batched_cycles(script, cycles):
    """`cycles` fair cycles in one pgbench script whose consumers apply them together, as the
    fleet's consumers do under load (several events a transaction, consumer_batch_events): every
    cycle's rental and payment work in turn, as the one-cycle script has it, then each consumer's
    work for all of them in one transaction of its own. With 1, the script as it is."""
    if cycles == 1:
        return script
    sections, current = [], None
    for line in script.splitlines():
        if line.startswith("-- "):
            current = [line]
            sections.append(current)
        elif current is not None:
            current.append(line)
    head = script[:script.index(sections[0][0])] if sections else ""

    def consumer(section):
        return any(re.search(r"\}\.inbox\b", line) for line in section)

    def of_cycle(text, k):
        text = re.sub(r"\bAS (" + "|".join(PER_CYCLE) + r")\b", rf"AS \1_{k}", text)
        return re.sub(r":(" + "|".join(PER_CYCLE) + r")\b", rf":\1_{k}", text)

    out = [head.rstrip("\n")]
    for k in range(cycles):
        for section in sections:
            if not consumer(section):
                out.append(of_cycle("\n".join(section), k))
    # One transaction per consumer for every cycle's events, in the order the events came.
    by_consumer = {}
    for section in sections:
        if consumer(section):
            by_consumer.setdefault(section[0].split(":")[0], []).append(section)
    for who, parts in by_consumer.items():
        out += [f"{who}: {cycles} cycles' events in one transaction", "BEGIN;"]
        for k in range(cycles):
            for section in parts:
                body = [line for line in section[1:] if line not in ("BEGIN;", "COMMIT;")]
                out.append(of_cycle("\n".join(body), k))
        out.append("COMMIT;")
    return "\n".join(out) + "\n"


def fair_cycle_script(cycles=1):
    return batched_cycles(FAIR_CYCLE_SCRIPT, cycles).format(
        **{schema: copy_of(schema) for schema in FAIR_TABLES},
        rental_columns="id, book_id, user_id, rental_fee, status, payment_id, created_at, rented_at, "
                       "due_at, cancelled_at, returned_at",
        book_columns="id, title, author, rental_fee, status, current_rental_id, times_rented, "
                     "registered_at, updated_at",
        account_columns="id, name, email, role, active_rentals, created_at",
        view_rental_columns="r.id, r.customer_id, r.book_id, r.rental_fee, r.payment_id, r.status, "
                            "r.payment_status, r.rented_at, r.due_at, r.returned_at, r.cancelled_at, "
                            "r.refunded_at")


def statements(script):
    """(who, statements, transactions) for each party of a pgbench script, in order of
    appearance: who is the service a `-- <service>: …` comment names (`pgbench` for the script's
    own); a statement outside BEGIN … COMMIT is a transaction of its own; an `\\else` branch is
    left out."""
    counts, who, open_tx, sql, skipped = {}, "", False, "", False
    for line in script.splitlines():
        named = re.match(r"-- ([a-z][a-z -]*): ", line)
        if named:
            who = named[1]
        # The branch a pass that does its work does not take.
        skipped = (skipped or line.startswith("\\else")) and not line.startswith("\\endif")
        if skipped or line.startswith(("--", "\\")) or not line.strip():
            continue
        sql += line
        if not (line.rstrip().endswith(";") or re.search(r"\\[ag]set\b", line)):
            continue
        word = re.match(r"\w+", sql.strip())[0].upper()
        entry = counts.setdefault(who, [0, 0])
        entry[0] += 1
        if word == "BEGIN":
            open_tx = True
            entry[1] += 1
        elif word in ("COMMIT", "ROLLBACK"):
            open_tx = False
        elif not open_tx:
            entry[1] += 1
        sql = ""
    return [(who, n, tx) for who, (n, tx) in counts.items()]


def outbox_events(script):
    """Events a cycle writes to each schema's outbox."""
    return {schema: len(re.findall(rf"INSERT INTO {copy_of(schema)}\.outbox\b", script))
            for schema in FAIR_TABLES}


def fair_statements(per_pass_events=None, cycles=1):
    """What one fair cycle runs, [(who, statements, transactions)] (the script's own statement
    that makes the cycle's ids left out), with each relay's share of passes (a pass: BEGIN, its
    turn, the pending events, the update, the backlog, COMMIT) at `per_pass_events` {schema:
    events a pass} (RELAY_EVENTS_PER_PASS where it names none), the consumers applying
    `cycles` cycles' events in a transaction; and the totals."""
    cycle = fair_cycle_script(cycles)
    rows = [(who, n / cycles, tx / cycles) for who, n, tx in statements(cycle) if who != "pgbench"]
    per_pass = sum(n for _, n, _ in statements(FAIR_RELAY_SCRIPT.format(service="x", copy="x")))
    for schema, events in outbox_events(cycle).items():
        if events:
            passes = events / cycles / (per_pass_events or {}).get(schema, RELAY_EVENTS_PER_PASS)
            rows.append((f"{SERVICES[schema]}'s outbox relay", per_pass * passes, passes))
    return rows, sum(n for _, n, _ in rows), sum(tx for _, _, tx in rows)


def psql(url, sql, *extra):
    return subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def pg_url(fleet):
    admin = urllib.parse.urlsplit(fleet.settings["DATABASE_ADMIN_URL"])
    return urllib.parse.urlunsplit(admin._replace(path="/" + fleet.settings["FLEET_DB_NAME"]))


def run_pgbench(url, clients, seconds, scripts, variables=None):
    """Runs pgbench (prepared statements, two threads) over `scripts` ([(path, weight)]) and
    returns its figures: {"tps", "latency_ms", "failed", "scripts": [{"tps", "count",
    "latency_ms"}] in the order given}."""
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds)]
    for name, value in (variables or {}).items():
        command += ["-D", f"{name}={value}"]
    for path, weight in scripts:
        command += ["-f", f"{path}@{weight}" if len(scripts) > 1 else str(path)]
    done = subprocess.run(command + [url], capture_output=True, text=True)
    if done.returncode:
        # A client that met an error other than a serialization failure or a deadlock aborts.
        raise RuntimeError(f"pgbench exited with {done.returncode}: "
                           + " / ".join(done.stderr.strip().splitlines()[-3:]))
    out = done.stdout

    def number(pattern, text):
        found = re.search(pattern, text, re.M)
        return found and float(found[1])

    # Each script's section, when there are several.
    sections = re.split(r"^SQL script \d+: .*$", out, flags=re.M)
    figures = {
        "tps": number(r"^tps = ([\d.]+)", sections[0]),
        "latency_ms": number(r"^latency average = ([\d.]+) ms", sections[0]),
        "failed": int(number(r"^number of failed transactions: (\d+)", sections[0]) or 0),
        "scripts": [{
            "tps": number(r"tps = ([\d.]+)\)", section),
            "count": int(number(r"- (\d+) transactions", section)),
            "latency_ms": number(r"- latency average = ([\d.]+) ms", section),
        } for section in sections[1:]],
    }
    return figures


def pgbench(url, clients, seconds):
    """Rent → return cycles per second as bare SQL, rental's and payment's main statements, and
    ms a cycle."""
    tables = [("catalogue", "rental.catalogue"), ("rentals", "rental.rentals"),
              ("rental_outbox", "rental.outbox"), ("payments", "payment.payments"),
              ("payment_outbox", "payment.outbox")]
    setup = "DROP SCHEMA IF EXISTS pgbench_rent CASCADE; CREATE SCHEMA pgbench_rent;\n" + "".join(
        f"CREATE TABLE pgbench_rent.{name} (LIKE {source} INCLUDING ALL);\n" for name, source in tables
    ) + ("INSERT INTO pgbench_rent.catalogue (book_id, title, rental_fee, updated_at) "
         "SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'Siege', 300, now() "
         f"FROM generate_series(0, {clients}) AS n;\n")
    psql(url, setup)
    work = run.RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    script = work / "rent-return.pgbench.sql"
    script.write_text(PGBENCH_SCRIPT.replace("{PAYLOAD}", PAYLOAD.replace("'", "''")))
    run.say(f"pgbench -M prepared -c {clients} -T {seconds}: a rent and a return as bare SQL")
    try:
        out = run_pgbench(url, clients, seconds, [(script, 1)])
    finally:
        psql(url, "DROP SCHEMA pgbench_rent CASCADE")
    return out["tps"], out["latency_ms"]


def fair_setup(url, clients):
    """Empty copies of the tables a fair cycle touches, with the rows each client's cycles need
    already there."""
    copies = [(schema, table) for schema, tables in FAIR_TABLES.items() for table in tables]
    setup = [f"DROP SCHEMA IF EXISTS {copy_of(s)} CASCADE; CREATE SCHEMA {copy_of(s)};" for s in FAIR_TABLES]
    setup += [f"CREATE TABLE {copy_of(s)}.{t} (LIKE {s}.{t} INCLUDING ALL);" for s, t in copies]
    # LIKE copies no foreign key: the copies get the originals' among themselves (rental's
    # rentals → catalogue), whose checks are part of the work.
    keys = psql(url, "SET search_path = ''; SELECT n.nspname, c.relname, pg_get_constraintdef(k.oid) "
                "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f'",
                "-A", "-t", "-F", "\t")
    for line in keys.splitlines():
        schema, table, definition = line.split("\t")
        target = re.search(r"REFERENCES (\w+)\.(\w+)", definition)
        if (schema, table) in copies and target and (target[1], target[2]) in copies:
            definition = definition.replace(f"REFERENCES {target[1]}.", f"REFERENCES {copy_of(target[1])}.")
            setup.append(f"ALTER TABLE {copy_of(schema)}.{table} ADD {definition};")
    # Each client's book, in every service that knows it (rental's replica, book-management,
    # view's board from BookRegistered), and its customer (user's account, a points balance as
    # after their first credit).
    book = "('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid"
    customer = "('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid"
    each = f"FROM generate_series(0, {clients}) AS n"
    setup += [
        f"INSERT INTO {copy_of('rental')}.catalogue (book_id, title, rental_fee, updated_at) "
        f"SELECT {book}, 'Siege ' || n, 300, now() {each};",
        f"INSERT INTO {copy_of('book')}.books (id, title, author, rental_fee, status, times_rented, "
        f"registered_at, updated_at) SELECT {book}, 'Siege ' || n, 'Load', 300, 'AVAILABLE', 0, "
        f"now(), now() {each};",
        f"INSERT INTO {copy_of('view')}.books (id, title, author, rental_fee) "
        f"SELECT {book}, 'Siege ' || n, 'Load', 300 {each};",
        f"INSERT INTO {copy_of('users')}.accounts (id, name, email, password_hash, role, "
        f"active_rentals, created_at) SELECT {customer}, 'Siege Reader', 'siege-' || n || "
        f"'@fleet.example', '{PASSWORD_HASH}', 'CUSTOMER', 0, now() {each};",
        f"INSERT INTO {copy_of('points')}.balances (user_id, points) SELECT {customer}, 0 {each};",
    ]
    setup += [f"ANALYZE {copy_of(s)}.{t};" for s, t in copies]
    psql(url, "\n".join(setup))


def consumer_events_per_cycle():
    """Events each consumer applies in one fair cycle (its inbox rows), by service."""
    counts = {}
    for who, n, _ in statements("\n".join(
            line for line in fair_cycle_script().splitlines()
            if line.startswith("-- ") or re.search(r"\.inbox\b", line))):
        counts[who] = n
    return counts


def cycles_a_batch(events_per_transaction):
    """How many fair cycles the consumers apply in one transaction so that each applies about as
    many events a transaction as the fleet's did ({service: events}): the median over consumers,
    1 to 16."""
    per_cycle = consumer_events_per_cycle()
    ratios = sorted(events / per_cycle[who] for who, events in events_per_transaction.items()
                    if per_cycle.get(who))
    if not ratios:
        return 1
    return max(1, min(16, round(ratios[len(ratios) // 2])))


def fair_pgbench(url, clients, seconds, per_pass_events=None, cycles=1):
    """The fair ceiling: rent → return cycles per second with every statement the fleet runs
    for one (FAIR_CYCLE_SCRIPT), the outbox relays' passes beside them (FAIR_RELAY_SCRIPT,
    weighted to a pass per `per_pass_events[schema]` events, what the fleet's relays published
    a pass in its cycles, else RELAY_EVENTS_PER_PASS), on copies of the tables, each pgbench
    transaction of the script `cycles` cycles whose consumers apply their events together (as
    the fleet's consumers batch what they have received); ms a cycle, its share of relay passes
    included; what a cycle runs (fair_statements)."""
    per_pass = {schema: (per_pass_events or {}).get(schema) or RELAY_EVENTS_PER_PASS
                for schema in FAIR_TABLES}
    fair_setup(url, clients)
    work = run.RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    cycle = fair_cycle_script(cycles)
    (work / "fair-cycle.pgbench.sql").write_text(cycle)
    # pgbench weighs scripts with integers: a cycle 1,000, a relay pass 1,000 ÷ its events.
    scripts = [(work / "fair-cycle.pgbench.sql", 1000)]
    events = {schema: n for schema, n in outbox_events(cycle).items() if n}
    for schema, n in events.items():
        path = work / f"fair-relay-{schema}.pgbench.sql"
        path.write_text(FAIR_RELAY_SCRIPT.format(service=SERVICES[schema], copy=copy_of(schema)))
        scripts.append((path, max(1, round(1000 * n / per_pass[schema]))))
    rows, total, transactions = fair_statements(per_pass, cycles)
    run.say(f"pgbench -M prepared -c {clients} -T {seconds}: a rent and a return with every "
            f"statement the fleet runs for them ({total:.1f} a cycle)")
    try:
        out = run_pgbench(url, clients, seconds, scripts, FAIR_PAYLOADS)
    finally:
        psql(url, "\n".join(f"DROP SCHEMA IF EXISTS {copy_of(s)} CASCADE;" for s in FAIR_TABLES))
    script = out["scripts"][0]
    # A client's time for a cycle: its own, and its share of relay passes.
    latency = sum(s["count"] * s["latency_ms"] for s in out["scripts"]) / script["count"] / cycles \
        if script["count"] else None
    return {
        "cycles_per_s": script["tps"] * cycles, "latency_ms": latency, "failed": out["failed"],
        "cycles_a_consumer_transaction": cycles,
        "statements_per_cycle": round(total, 2), "transactions_per_cycle": round(transactions, 2),
        "by_service": {who: {"statements": round(n, 2), "transactions": round(tx, 3)}
                       for who, n, tx in rows},
        "relay_events_per_pass": {SERVICES[s]: per_pass[s] for s in events},
    }


def rss_now(fleet, kafka_pid):
    """Every process's RSS in MB, the broker's JVM (when there is one) under KAFKA."""
    rss = {name: fleet.rss_mb(name) for name, _ in fleet.instances()}
    if kafka_pid:
        rss[KAFKA] = run.rss_of(kafka_pid)
    return rss


class RssWatch:
    """The highest RSS of every process while it runs."""

    def __init__(self, fleet, kafka_pid):
        self.fleet, self.kafka_pid, self.peak, self.done = fleet, kafka_pid, {}, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        while not self.done.wait(0.25):
            try:
                rss = rss_now(self.fleet, self.kafka_pid)
            except (OSError, ValueError):
                continue
            for name, mb in rss.items():
                self.peak[name] = max(self.peak.get(name, 0), mb)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def board_lag(fleet, since):
    lags = [run.field(line, "lag_ms") for line in fleet.log_lines("view", since)
            if run.field(line, "message") == "event applied" and run.field(line, "lag_ms") is not None]
    return run.percentile(lags, 0.5), run.percentile(lags, 0.99), len(lags)


CONSUMERS = ("book-management", "payment", "user", "view", "points", "rental")


def batches():
    """{(service, what): (items, batches)} so far: events each consumer applied and its
    transactions (consumer_batch_events), events rental's and payment's relays published and
    their passes (outbox_pass_events)."""
    counts = {}
    for name in CONSUMERS:
        exposition = run.metrics(run.PORTS[name])
        for what in ("consumer_batch_events", "outbox_pass_events"):
            counts[name, what] = (run.sample(exposition, f"{what}_sum"),
                                  run.sample(exposition, f"{what}_count"))
    return counts


def per_batch(before, after, what):
    """Items per batch of `what` between two batches() readings, by service."""
    per = {}
    for (name, kind), (items, count) in after.items():
        items, count = items - before[name, kind][0], count - before[name, kind][1]
        if kind == what and count:
            per[name] = round(items / count, 1)
    return per


def through(load, fleet, base, who, reps, failures):
    """Rent → return cycles against `base`; figures with the rent latencies `who` logged."""
    offsets = {name: fleet.log_offset(name) for name in (who, "view")}
    batches_before = batches()
    rent, back, per_s = run.cycles(load, fleet, USERS, reps, {"rent": [201], "return": [200]},
                                   failures, tag=f"-{who}", base=base)
    run.wait_for("the board to show every return",
                 lambda: not load.api.board(load.token, status="RENTED"), timeout=120)
    # Only rents are POSTs to exactly this path; a return's path names its rental.
    rent_server = run.server_latencies(fleet, who, offsets[who], "/api/v1/rentals")
    batches_after = batches()
    return {
        # Events each consumer applied in this phase, per transaction; each relay, per pass.
        "consumer_events_per_transaction": per_batch(batches_before, batches_after,
                                                     "consumer_batch_events"),
        "relay_events_per_pass": per_batch(batches_before, batches_after, "outbox_pass_events"),
        "rent": rent, "return": back,
        "rents_per_s": rent["siege"]["transaction_rate"],
        "returns_per_s": back["siege"]["transaction_rate"],
        "cycles_per_s": per_s,
        "rent_p50_ms": run.percentile(rent_server, 0.5),
        "rent_p99_ms": run.percentile(rent_server, 0.99),
        "client_rent_p50_ms": run.percentile([ms for _, _, ms in rent["answers"]], 0.5),
        "client_rent_p99_ms": run.percentile([ms for _, _, ms in rent["answers"]], 0.99),
        "lag": board_lag(fleet, offsets["view"]),
    }


def steady_lag(load, fleet, quick):
    """Event → board lag while customers rent at a steady pace the machine keeps up with."""
    seconds = 8 if quick else STEADY["seconds"]
    books = load.books(run.books_for(STEADY, seconds, STEADY["users"]), fleet)
    since = fleet.log_offset("view")
    steady = run.siege("report-steady", load.rent_lines(books), load.token, STEADY["users"],
                       seconds=seconds, delay=STEADY["delay"])
    rented = sum(1 for _, s, _ in steady["answers"] if s == 201)
    run.wait_for("the board to list the steady rents",
                 lambda: len(load.api.board(load.token, status="RENTED")) >= rented, timeout=120)
    return steady["siege"]["transaction_rate"], board_lag(fleet, since)


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def kafka_version():
    """The Apache Kafka version scripts/kafka/pom.xml pins, or None."""
    try:
        pom = (run.REPO / "scripts" / "kafka" / "pom.xml").read_text()
    except OSError:
        return None
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    return found and found[1]


def kafka_ready_s():
    """Seconds from the broker's start to its first answer, as dev.sh logged them (whole
    seconds), or None."""
    try:
        log = (run.LOGS / "dev.sh.log").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"Kafka answers at \S+ \(ready in (?:(\d+)m )?(\d+)s\)", log)
    return found and int(found[1] or 0) * 60 + int(found[2])


def on_mock_broker(reps, quick):
    """The 50-user cycles through the gateway and the steady board lag again, on a fresh fleet
    with librdkafka's mock broker: what the same figures are without real Kafka."""
    failures = []
    fleet = run.Fleet(kafka="mock")
    try:
        fleet.start()
        # As long to settle as the first fleet had.
        time.sleep(3)
        load = run.Load(run.LOCAL_GATEWAY)
        gateway = through(load, fleet, run.LOCAL_GATEWAY, "gateway", reps, failures)
        steady_rate, steady = steady_lag(load, fleet, quick)
    finally:
        fleet.stop()
    return {"broker": fleet.broker, "gateway": gateway, "steady_rents_per_s": steady_rate,
            "steady": steady, "broken": [f"mock broker: {f}" for f in failures]}


def profiled(args, reps):
    """--profile-cpu: the gateway's 50-user cycles alone, under perf (siege/profile.py); the
    report's other figures are not measured, as perf would skew them."""
    import cpu_profile as profile
    profile.ensure_tools()
    fleet = run.Fleet()
    try:
        fleet.start()
        time.sleep(3)
        load = run.Load(run.LOCAL_GATEWAY)
        profiler = profile.Profiler(fleet, fleet.kafka_pid())
        profiler.start()
        try:
            gateway = through(load, fleet, run.LOCAL_GATEWAY, "gateway", reps, [])
        finally:
            shares = profiler.stop()
    finally:
        fleet.stop()
    run.say(f"under perf: {gateway['rents_per_s']:.0f} rents/s, rent p99 "
            f"{fmt(gateway['rent_p99_ms'])} ms (gateway's log), {gateway['cycles_per_s']:.0f} cycles/s")
    run.say("CPU: " + ", ".join(f"{k} {v} %" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])))
    return 0


def main(args):
    run.ensure_siege()
    if not args.no_build:
        run.build()
    if args.profile_cpu:
        return profiled(args, 8 if args.quick else 40)
    reps = 8 if args.quick else 40
    failures = []
    fleet = run.Fleet()
    try:
        fleet.start()
        broker, kafka_ready = fleet.broker, kafka_ready_s()
        kafka_pid = fleet.kafka_pid()
        if broker == "real" and not kafka_pid:
            run.say("dev.sh wrote no kafka.pid: the broker's RSS is left out")
        time.sleep(3)
        idle = rss_now(fleet, kafka_pid)
        load = run.Load(run.LOCAL_GATEWAY)
        watch = RssWatch(fleet, kafka_pid)
        gateway = through(load, fleet, run.LOCAL_GATEWAY, "gateway", reps, failures)
        direct = through(load, fleet, f"http://127.0.0.1:{run.PORTS['rental']}", "rental", reps,
                         failures)
        loaded = watch.stop()
        steady_rate, steady = steady_lag(load, fleet, args.quick)
        url, seconds = pg_url(fleet), 5 if args.quick else PGBENCH_SECONDS
        ceiling, sql_latency = pgbench(url, USERS, seconds)
        try:
            # Relay passes weighted as the fleet's relays made them in the gateway's cycles;
            # consumers with a transaction an event, and with as many events a transaction as
            # theirs had: the ceiling is the better of the two (batching need not win in bare
            # SQL, where a COMMIT costs little).
            per_pass = {schema: gateway["relay_events_per_pass"].get(SERVICES[schema])
                        for schema in FAIR_TABLES}
            batch = cycles_a_batch(gateway["consumer_events_per_transaction"])
            shapes = [fair_pgbench(url, USERS, seconds, per_pass, cycles)
                      for cycles in sorted({1, batch})]
            fair = max(shapes, key=lambda shape: shape["cycles_per_s"])
            fair["shapes"] = [{k: shape[k] for k in ("cycles_a_consumer_transaction", "cycles_per_s",
                                                     "statements_per_cycle", "transactions_per_cycle")}
                              for shape in shapes]
            if any(shape["failed"] for shape in shapes):
                failures.append("fair ceiling: "
                                f"{sum(s['failed'] for s in shapes)} pgbench transactions failed")
        except (RuntimeError, subprocess.CalledProcessError) as error:
            # The other figures stand on their own: write them, and say what failed.
            run.say(f"the fair ceiling failed: {error}")
            failures.append(f"fair ceiling: {error}")
            fair = None
        startup = {}
        # user last: its key is made at start here (dev.sh), so tokens die with it.
        for name in ("book-management", "rental", "payment", "view", "points", "gateway", "user"):
            startup[name] = fleet.restart(name)
    finally:
        fleet.stop()
    # Real Kafka against the mock, on a second fleet; pointless when the first ran on the mock.
    mock = None
    if broker != "mock":
        try:
            mock = on_mock_broker(reps, args.quick)
            failures += mock["broken"]
        except (Exception, SystemExit) as error:
            # The first fleet's figures stand on their own: write them, and say what failed.
            run.say(f"the mock broker's fleet failed: {error}")
            failures.append(f"mock broker: {error}")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=run.REPO,
                            capture_output=True, text=True).stdout.strip()
    figures = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit, "cores": os.cpu_count(), "users": USERS, "cycles_each": USERS * reps,
        "build": run.Fleet.profile, "broker": broker,
        "kafka_version": kafka_version() if broker == "real" else None,
        "gateway": {k: v for k, v in gateway.items() if k not in ("rent", "return")},
        "direct": {k: v for k, v in direct.items() if k not in ("rent", "return")},
        "steady_rents_per_s": steady_rate, "steady_board_lag_ms": steady[:2],
        "pgbench_cycles_per_s": ceiling, "pgbench_latency_ms": sql_latency,
        "pgbench_statements_per_cycle": sum(n for who, n, _ in statements(PGBENCH_SCRIPT)
                                            if who != "pgbench"),
        "fair_pgbench": fair,
        "rss_idle_mb": idle, "rss_loaded_mb": loaded, "startup_to_ready_s": startup,
        "kafka_start_to_ready_s": kafka_ready if broker == "real" else None,
        "mock_broker": mock and {
            "broker": mock["broker"],
            "gateway": {k: v for k, v in mock["gateway"].items() if k not in ("rent", "return")},
            "steady_rents_per_s": mock["steady_rents_per_s"],
            "steady_board_lag_ms": mock["steady"][:2],
        },
        "broken": failures,
    }
    run.OUT.mkdir(parents=True, exist_ok=True)
    (run.OUT / "latest.json").write_text(json.dumps(figures, indent=2) + "\n")
    series = [("through the gateway", gateway["rent"], gateway["return"]),
              ("straight to rental", direct["rent"], direct["return"])]
    if mock:
        series.append(("gateway, mock broker", mock["gateway"]["rent"], mock["gateway"]["return"]))
    run.plot("latest", "report: rent, then return, 50 users: through the gateway and straight to rental"
             + (", and through the gateway on the mock broker" if mock else ""), series, [])
    g, d = gateway, direct
    lag50, lag99, lag_events = g["lag"]
    rows = [
        ("rents/s through the gateway (50 users)", fmt(g["rents_per_s"], 0), "siege"),
        ("rent latency through the gateway, p50 / p99",
         f"{fmt(g['rent_p50_ms'])} / {fmt(g['rent_p99_ms'])} ms",
         f"gateway's log; siege saw {fmt(g['client_rent_p50_ms'], 0)} / {fmt(g['client_rent_p99_ms'], 0)} ms"),
        ("returns/s through the gateway", fmt(g["returns_per_s"], 0), "siege"),
        ("rent → return cycles/s through the gateway", fmt(g["cycles_per_s"], 0),
         "books ÷ (rent phase + return phase)"),
        ("rent → return cycles/s as bare SQL (pgbench, 50 clients)", fmt(ceiling, 0),
         f"the database's ceiling: rental's and payment's main statements "
         f"({figures['pgbench_statements_per_cycle']} a cycle); {fmt(sql_latency, 2)} ms a cycle"),
        ("fleet ÷ ceiling (cycles/s)", f"{g['cycles_per_s'] / ceiling:.2f}", "gateway cycles ÷ pgbench cycles"),
        ("rent → return cycles/s, fair ceiling (pgbench, 50 clients)",
         fmt(fair and fair["cycles_per_s"], 0),
         (f"every statement the fleet runs for a cycle ({fair['statements_per_cycle']:.1f}, BEGIN "
          f"and COMMIT counted, in {fair['transactions_per_cycle']:.1f} transactions, relay passes "
          f"included); {fmt(fair['latency_ms'], 2)} ms a cycle") if fair else "failed: see below"),
        ("fleet ÷ fair ceiling (cycles/s)", ratio(g["cycles_per_s"], fair and fair["cycles_per_s"]),
         "gateway cycles ÷ fair pgbench cycles: what the fleet's code and processes cost on top of "
         "the database work they must do"),
        ("rents/s straight to rental", fmt(d["rents_per_s"], 0), "siege"),
        ("rent latency straight to rental, p50 / p99", f"{fmt(d['rent_p50_ms'])} / {fmt(d['rent_p99_ms'])} ms",
         "rental's log"),
        ("gateway ÷ direct: rents/s", f"{g['rents_per_s'] / d['rents_per_s']:.2f}", ""),
        ("gateway ÷ direct: rent p99", f"{g['rent_p99_ms'] / d['rent_p99_ms']:.2f}", ""),
        (f"event → board lag at a steady {steady_rate:.0f} rents/s, p50 / p99",
         f"{fmt(steady[0], 0)} / {fmt(steady[1], 0)} ms",
         f"view's log, {steady[2]} events; {STEADY['users']} users thinking 0–{STEADY['delay']} s"),
        ("event → board lag during the 50-user cycles, p50 / p99", f"{fmt(lag50, 0)} / {fmt(lag99, 0)} ms",
         f"view's log, {lag_events} events: the view falls behind while the machine is saturated"),
    ]
    version = figures["kafka_version"]
    on = {
        "real": f"on Apache Kafka{' ' + version if version else ''} (one node, KRaft, a JVM started "
                "by `scripts/dev.sh`)",
        "mock": "on librdkafka's mock broker (`dev-broker`, in memory, not Kafka)",
        "external": "on the Kafka at `KAFKA_BROKERS`",
    }.get(broker, f"on the broker `{broker}`")
    lines = [
        "# Benchmark report",
        "",
        f"`siege/run report` on {figures['when']}, commit `{commit}`, {figures['cores']} cores; "
        f"one local fleet ({run.Fleet.profile} build, one replica each) {on}"
        + ("; then a second one on librdkafka's mock broker (`dev-broker`) for the comparison "
           "below" if mock else "")
        + f"; {USERS} siege users, {USERS * reps} rent → return cycles per target. One run on a "
        "noisy shared machine: read ratios, not absolutes.",
        "",
        "| figure | value | how |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "| process | RSS idle | RSS loaded (peak) | start → ready |",
        "|---|---|---|---|",
        *[f"| {name} | {idle[name]:.1f} MB | {loaded.get(name, 0):.1f} MB | "
          f"{startup[name] * 1000:.0f} ms |" for name in startup],
        *([f"| {KAFKA} | {idle[KAFKA]:.1f} MB | {loaded.get(KAFKA, 0):.1f} MB | "
           + (f"{kafka_ready} s (its first start, as dev.sh logs it) |" if kafka_ready is not None
              else "– |")] if KAFKA in idle else []),
        "",
        "![rent and return over time](latest.png)",
        "",
        "Loaded RSS is the highest seen while the cycles above ran; start → ready is from the "
        "process's start (after SIGTERM, dev.sh starts it again) to its first 200 on `/readyz` (on its "
        "operations port). "
        "The ceiling's pgbench cycle is rental's and payment's main statements of a rent and a "
        "return on copies of their tables (`siege/report.py`); it leaves out the outbox relays and "
        "the consumers, which the fleet also runs. The fair ceiling's cycle is every statement the fleet runs "
        "against Postgres for a rent and a return through the gateway, in the same order "
        "on copies of every table they touch: rental's (the catalogue lookup; the "
        "rental opened under the customer's advisory lock, its insert counting their active "
        "rentals and keyed by the gateway's Idempotency-Key; the payment outcome; the ownership "
        "check; the return, row locked), payment's (the lookup by rental, the payment), each "
        "with its outbox event (BookRented, PaymentApproved, BookReturned); every consumer's "
        "inbox row and effect for each of them (payment's inbox rows for the two it ignores, "
        "book-management's and user's counts, points' rental and credit, view's board rows, four "
        "or five statements an event); and the outbox relays' passes (turn, pending events, "
        "marked sent, backlog), weighted at one pass per as many events as the fleet's relays "
        "published a pass in the gateway's cycles ("
        + (", ".join(f"{who}'s {n:g}" for who, n in fair["relay_events_per_pass"].items())
           if fair else "–")
        + "; the relay looks again 20 ms after a pass that published something, 100 ms after one "
        "that found nothing)"
        + ". The fleet's consumers apply the events they have received together, one transaction "
        "for several (events per transaction in the gateway's cycles: "
        + ", ".join(f"{name} {n:g}" for name, n in g["consumer_events_per_transaction"].items())
        + "). The fair ceiling is the better of two runs: consumers with a transaction an event, "
        "and consumers applying as many cycles' events in one transaction as the fleet's did ("
        + "; ".join(f"{s['cycles_a_consumer_transaction']} cycle(s) a transaction: "
                    f"{s['cycles_per_s']:,.0f} cycles/s, {s['statements_per_cycle']:.1f} statements "
                    f"and {s['transactions_per_cycle']:.1f} transactions a cycle"
                    for s in (fair or {}).get("shapes", []))
        + "). Each pgbench client rents its own book as its own customer; siege's cycles are one "
        "customer's, so in the fleet that customer's rents also wait for one another's advisory "
        "lock and count all their active rentals, and the user and points consumers update one "
        "row: costs of the load's shape, left in the ratio. Left out of both: the connection "
        "pool's check of each connection it hands out (a round trip, no statement), what runs "
        "by the clock rather than per cycle (relays finding nothing, rental's expiry and "
        "reconciler, retention). The fleet's cycles share the machine's two cores between siege, "
        "seven processes, their consumers and outbox relays, PostgreSQL and the broker.",
        "",
    ]
    if mock:
        m = mock["gateway"]
        real_name = "real Kafka" if broker == "real" else "Kafka at `KAFKA_BROKERS`"
        compared = [
            ("rents/s through the gateway (50 users)", fmt(g["rents_per_s"], 0),
             fmt(m["rents_per_s"], 0), ratio(g["rents_per_s"], m["rents_per_s"])),
            ("rent p99 through the gateway (gateway's log)", f"{fmt(g['rent_p99_ms'])} ms",
             f"{fmt(m['rent_p99_ms'])} ms", ratio(g["rent_p99_ms"], m["rent_p99_ms"])),
            ("event → board lag at the steady load, p50", f"{fmt(steady[0], 0)} ms",
             f"{fmt(mock['steady'][0], 0)} ms", ratio(steady[0], mock["steady"][0])),
            ("event → board lag at the steady load, p99", f"{fmt(steady[1], 0)} ms",
             f"{fmt(mock['steady'][1], 0)} ms", ratio(steady[1], mock["steady"][1])),
            ("the steady load, rents/s", fmt(steady_rate, 0), fmt(mock["steady_rents_per_s"], 0),
             ratio(steady_rate, mock["steady_rents_per_s"])),
        ]
        lines += [
            f"## {real_name} vs mock broker",
            "",
            f"| figure | {real_name} | mock broker | {real_name} ÷ mock |",
            "|---|---|---|---|",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in compared],
            "",
            "The mock's figures come from a second fleet, fresh as the first, started on "
            "librdkafka's mock broker (`scripts/dev.sh --kafka mock`): the same 50-user cycles "
            "through the gateway and the same steady load "
            f"({STEADY['users']} users thinking 0–{STEADY['delay']} s), measured the same way. The "
            "mock keeps its topics in memory in one small process (no log on disk, no JVM), so "
            "the ratios are roughly what a real broker costs the fleet on this machine.",
            "",
        ]
    if failures:
        lines += ["**Broken during this run:** " + "; ".join(failures), ""]
    (run.OUT / "latest.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 1 if failures else 0
