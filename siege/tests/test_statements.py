"""The statements the report captures from a run and replays (siege.statements): the server log
read back, transactions and a consumer's events told apart, the cycle's work picked out, the
pgbench scripts written; and the agreement of a capture made from a run of the fleet with the
cycle written by hand from the services' adapters.

The capture is siege/tests/fixtures/captured-cycle.json (made by `siege/run report`, which keeps
its own in siege/results/work/captured-cycle.json; SIEGE_CAPTURED_CYCLE names another to hold to
the hand copy).
"""

import collections
import json
import os
import re
import unittest
from pathlib import Path

from siege import ceilings, statements
from siege.statements import Replay, shape

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CAPTURED = Path(os.environ.get("SIEGE_CAPTURED_CYCLE") or FIXTURES / "captured-cycle.json")


def captured():
    return json.loads(CAPTURED.read_text())


def transactions_of(script):
    """[(who, (shape, …))] of a pgbench script: each `-- who: …` section a transaction (BEGIN
    and COMMIT included), pgbench's own statements and its meta-commands left out."""
    out, who, body, sql = [], None, [], ""
    for line in script.splitlines() + ["-- end: "]:
        named = re.match(r"-- ([a-z][a-z -]*): ", line)
        if named:
            if who and who != "pgbench" and body:
                out.append((who, tuple(body)))
            who, body = named[1], []
            continue
        if line.startswith(("--", "\\")) or not line.strip():
            continue
        sql += line + "\n"
        if line.rstrip().endswith(";") or re.search(r"\\[ag]set\b", line):
            body.append(shape(sql))
            sql = ""
    return out


def by_service(transactions):
    grouped = collections.defaultdict(collections.Counter)
    for who, body in transactions:
        grouped[who][body] += 1
    return grouped


class TheCapturedCycleAgreesWithTheHandCopy(unittest.TestCase):
    """The replay of a capture and the cycle written by hand: the same transactions, each with
    the same statements in the same order, service by service. (The order of transactions across
    services is the run's: consumers of two topics apply what comes first.)"""

    def test_every_service_runs_the_same_transactions(self):
        replay = Replay(captured())
        ours = by_service(transactions_of(replay.cycle_script()))
        hand = by_service(transactions_of((FIXTURES / "fair-cycle-by-hand.pgbench.sql").read_text()))
        self.assertEqual(sorted(ours), sorted(hand))
        for service in hand:
            with self.subTest(service=service):
                missing = hand[service] - ours[service]
                extra = ours[service] - hand[service]
                self.assertFalse(missing or extra, f"{service}: by hand only {list(missing)}; "
                                                   f"captured only {list(extra)}")

    def test_every_relay_pass_runs_the_same_statements(self):
        replay = Replay(captured())
        template = (FIXTURES / "relay-pass-by-hand.pgbench.sql").read_text()
        relays = replay.outbox_events()
        self.assertEqual(sorted(relays), ["payment", "rental"])
        for schema in relays:
            with self.subTest(schema=schema):
                hand = template.format(service=statements.SERVICES[schema],
                                       copy=statements.copy_of(schema))
                self.assertEqual(
                    [shape(line) for line in replay.relay_script(schema).splitlines()
                     if not line.startswith(("--", "\\"))],
                    [shape(line) for line in hand.splitlines() if not line.startswith(("--", "\\"))])

    def test_the_cycle_counts_as_the_hand_copy_counted(self):
        """The figures the report prints of the fair cycle: statements and transactions by
        service (the cycle's outbox events and the relays' passes follow from them)."""
        replay = Replay(captured())
        hand = (FIXTURES / "fair-cycle-by-hand.pgbench.sql").read_text()
        self.assertEqual(
            sorted((who, n, tx) for who, n, tx in ceilings.script_statements(replay.cycle_script())
                   if who != "pgbench"),
            sorted((who, n, tx) for who, n, tx in ceilings.script_statements(hand) if who != "pgbench"))
        self.assertEqual(replay.outbox_events(), {"rental": 2, "payment": 1})


LOG = """\
1733611200.001 [41] rental_svc@fleet_siege LOG:  statement: BEGIN
1733611200.002 [41] rental_svc@fleet_siege LOG:  execute sqlx_s_1: SELECT pg_advisory_xact_lock($1, hashtext($2::text))
1733611200.002 [41] rental_svc@fleet_siege DETAIL:  parameters: $1 = '1', $2 = '00000000-0000-4000-9000-000000000001'
1733611200.003 [52] points_svc@fleet_siege LOG:  statement: BEGIN
1733611200.003 [41] rental_svc@fleet_siege LOG:  execute sqlx_s_2: INSERT INTO rentals (id, book_id, note)
\tVALUES ($1, $2, $3)
1733611200.003 [41] rental_svc@fleet_siege DETAIL:  parameters: $1 = '0193a6f2-7c4e-7b1d-9f3a-2c5e8d1b4a60', $2 = '00000000-0000-4000-8000-000000000001', $3 = 'it''s, $4 = odd'
1733611200.004 [52] points_svc@fleet_siege LOG:  execute <unnamed>: SELECT 1 FROM rentals WHERE rental_id = $1
1733611200.004 [52] points_svc@fleet_siege DETAIL:  parameters: $1 = NULL
1733611200.005 [41] rental_svc@fleet_siege LOG:  statement: COMMIT
1733611200.005 [52] points_svc@fleet_siege LOG:  statement: ROLLBACK
1733611200.006 [60] postgres@fleet_siege LOG:  statement: SELECT 'marker'
1733611200.007 [70] view_svc@fleet_siege LOG:  execute sqlx_s_9: SELECT now()
"""
ROLES = {"rental_svc": "rental", "points_svc": "points", "view_svc": "view"}


class LogTest(unittest.TestCase):
    def test_statements_with_their_parameters_in_the_log_order(self):
        logged = statements.parse_log(LOG)
        self.assertEqual([(s["pid"], s["role"]) for s in logged],
                         [(41, "rental_svc"), (41, "rental_svc"), (52, "points_svc"), (41, "rental_svc"),
                          (52, "points_svc"), (41, "rental_svc"), (52, "points_svc"), (60, "postgres"),
                          (70, "view_svc")])
        self.assertEqual(logged[3]["sql"], "INSERT INTO rentals (id, book_id, note)\nVALUES ($1, $2, $3)")
        self.assertEqual(logged[3]["params"], ["0193a6f2-7c4e-7b1d-9f3a-2c5e8d1b4a60",
                                               "00000000-0000-4000-8000-000000000001", "it's, $4 = odd"])
        self.assertEqual(logged[4]["params"], [None])
        self.assertEqual(logged[0]["params"], [])

    def test_parameters(self):
        self.assertEqual(statements.parse_parameters("$1 = 'a', $2 = NULL, $3 = 'x''y'"), ["a", None, "x'y"])
        self.assertEqual(statements.parse_parameters(""), [])
        with self.assertRaises(ValueError):
            statements.parse_parameters("$1 = unquoted")

    def test_transactions_by_connection_in_the_order_they_began(self):
        units = statements.transactions(statements.parse_log(LOG), ROLES)
        self.assertEqual([(u["service"], [statements.first_word(s["sql"]) for s in u["statements"]])
                          for u in units],
                         [("rental", ["BEGIN", "SELECT", "INSERT", "COMMIT"]),
                          ("points", ["BEGIN", "SELECT", "ROLLBACK"]),
                          ("view", ["SELECT"])])


def unit(service, *body, schema=None):
    return {"service": service, "schema": schema or service,
            "statements": [{"sql": sql, "params": list(params)} for sql, *params in body]}


class CycleTest(unittest.TestCase):
    BOOK, RENTAL, EVENT, OTHER = ("00000000-0000-4000-8000-000000000001", "0193a6f2-7c4e-7b1d-9f3a-2c5e8d1b4a60",
                                  "5d0c9f5e-6b1a-4c8e-9d52-3f1f0c6f7a10", "6d0c9f5e-6b1a-4c8e-9d52-3f1f0c6f7a10")

    def test_a_consumer_transaction_is_split_by_event(self):
        batch = unit("view", ("BEGIN",), ("INSERT INTO inbox (event_id) VALUES ($1)", self.EVENT),
                     ("UPDATE rentals SET x = 1 WHERE id = $1", self.RENTAL),
                     ("INSERT INTO inbox (event_id) VALUES ($1)", self.OTHER),
                     ("UPDATE books SET y = 2 WHERE id = $1", self.OTHER), ("COMMIT",))
        split = statements.by_event([batch, unit("rental", ("SELECT 1",))])
        self.assertEqual([[s["sql"].split()[0] for s in u["statements"]] for u in split],
                         [["BEGIN", "INSERT", "UPDATE", "COMMIT"], ["BEGIN", "INSERT", "UPDATE", "COMMIT"],
                          ["SELECT"]])

    def test_the_cycle_is_what_binds_its_values_and_the_values_they_bound(self):
        units = [
            unit("rental", ("INSERT INTO rentals (id, book_id) VALUES ($1, $2)", self.RENTAL, self.BOOK)),
            unit("rental", ("INSERT INTO outbox (event_id, key) VALUES ($1, $2)", self.EVENT, self.BOOK)),
            unit("view", ("INSERT INTO inbox (event_id) VALUES ($1)", self.EVENT)),
            unit("view", ("INSERT INTO inbox (event_id) VALUES ($1)", self.OTHER)),
            unit("rental", ("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)", "{7,8}")),
            unit("rental", ("SELECT now()",)),
        ]
        cycle = statements.of_the_cycle(units, {self.BOOK, self.RENTAL})
        self.assertEqual(cycle, units[:3])
        self.assertEqual(statements.relay_passes(units), {"rental": units[4]["statements"]})


class ShapeTest(unittest.TestCase):
    def test_bound_literal_and_variable_values_and_casts_look_alike(self):
        written = [
            "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
            "SELECT pg_advisory_xact_lock(1, hashtext(:user_id::uuid::text));",
            "select pg_advisory_xact_lock( $1 ,hashtext( $2 ) )",
        ]
        self.assertEqual({shape(sql) for sql in written}, {"select pg_advisory_xact_lock(?,hashtext(?))"})

    def test_a_copy_schema_comments_and_meta_commands_are_left_out(self):
        self.assertEqual(
            shape("-- rental: look\nSELECT a FROM pgbench_fair_rental.rentals r WHERE r.id = :rental_id FOR UPDATE \\gset r_"),
            "select a from rentals r where r.id=? for update")
        self.assertEqual(shape("UPDATE r SET due_at = now() + interval '14 days' WHERE s IN ('A', 'B');"),
                         "update r set due_at=now()+interval ? where s in(?,?)")

    def test_pg_stat_statements_normalised_text_has_the_same_shape(self):
        self.assertEqual(
            shape("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || $1 || $2))"),
            shape("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.' || $1))"))


class CountsTest(unittest.TestCase):
    """pg_stat_statements' counts, as Counter.read() gives them: (schema, query, calls, rows)."""

    COUNTS = [
        ("rental", "UPDATE outbox SET sent_at = now() WHERE id = ANY($1)", 90, 2000),
        ("rental", "SELECT book_id, title, rental_fee, retired FROM catalogue WHERE book_id = $1", 1000, 1000),
        ("rental", "select book_id, title, rental_fee, retired from catalogue where book_id = $1", 20, 20),
        ("book", "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || $1 || $2))", 800, 800),
        ("book", "ROLLBACK", 800, 0),
        ("users", "SELECT id FROM accounts WHERE email = $1", 700, 700),
    ]

    def test_calls_a_cycle_by_service_and_shape(self):
        ran = statements.per_cycle(self.COUNTS, 1000)
        self.assertEqual(ran[("rental", "select book_id,title,rental_fee,retired from catalogue where book_id=?")],
                         1.02)
        self.assertEqual(ran[("book-management", "rollback")], 0.8)

    def test_a_relay_pass_publishes_the_rows_its_marking_statement_updated(self):
        self.assertEqual(statements.relay_events_per_pass(self.COUNTS), {"rental": 22.2})

    def test_what_ran_every_other_cycle_and_the_replay_lacks(self):
        replay = Replay(captured())
        lacking = statements.not_replayed(replay, statements.per_cycle(self.COUNTS, 1000))
        # Relays that find nothing and transaction control are by the clock; the catalogue
        # lookup is replayed; user's lookup by email is not.
        self.assertEqual(lacking, [{"service": "user", "statement": "select id from accounts where email=?",
                                    "per_cycle": 0.7}])


class NamesTest(unittest.TestCase):
    def test_the_column_an_insert_binds_each_value_to(self):
        self.assertEqual(statements.inserted_columns(
            "INSERT INTO rentals (id, user_id, created_at, key) SELECT $1, $2, now(), $4 "
            "WHERE (SELECT count(*) FROM rentals WHERE user_id = $2) < $3"),
            {1: "id", 2: "user_id", 4: "key"})
        self.assertEqual(statements.inserted_columns("INSERT INTO t (a, b) VALUES (lower($1), $2)"), {2: "b"})
        self.assertEqual(statements.inserted_columns("UPDATE t SET a = $1"), {})

    def test_the_values_a_cycle_made_are_named_for_what_they_are(self):
        names = Replay(captured()).names
        self.assertEqual(sorted(names.values()),
                         ["book_rented_event", "book_returned_event", "idempotency_key",
                          "payment_approved_event", "payment_id", "rental_id"])


class ReplayTest(unittest.TestCase):
    def setUp(self):
        self.replay = Replay(captured())

    def test_the_cycle_script_binds_the_cycle_s_ids_afresh_and_the_client_s_own(self):
        script = self.replay.cycle_script()
        ids = captured()["ids"]
        for value in ids.values():
            self.assertNotIn(value, script)
        self.assertIn(":rental_id", script)
        self.assertIn(":book_id", script)
        self.assertIn(":user_id", script)
        statements_only = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
        self.assertNotRegex(statements_only, r"\b(FROM|INTO|UPDATE) (rentals|catalogue|inbox|outbox)\b")
        head = script.split("\n-- ")[0]
        self.assertIn("AS rental_id", head)
        # No value pgbench would read as a variable where it stands.
        body = "\n".join(line for line in script.split("\\gset\n", 1)[1].splitlines()
                          if not line.startswith("--"))
        for literal in re.findall(r"'(?:[^']|'')*'", body):
            self.assertNotRegex(literal, r":[A-Za-z0-9_]")
        for name in re.findall(r"(?<!:):([a-z_][a-z0-9_]*)", body):
            self.assertTrue(name in self.replay.names.values() or name in self.replay.variables()
                            or name in ("book_id", "user_id"), name)

    def test_consumers_batched_apply_every_cycle_s_events_in_one_transaction_each(self):
        one = ceilings.script_statements(self.replay.cycle_script(1))
        four = ceilings.script_statements(self.replay.cycle_script(4))
        consumers = ceilings.consumer_events_per_cycle(self.replay)
        for who, n, tx in four:
            if who in ("pgbench",):
                continue
            if who in consumers and who not in ("rental", "payment"):
                # Four cycles' events, one BEGIN and COMMIT for all of them.
                single = next(row for row in one if row[0] == who)
                self.assertEqual((n, tx), (4 * (single[1] - 2 * single[2]) + 2, 1), who)
        self.assertIn(":rental_id_3", self.replay.cycle_script(4))

    def test_the_ceiling_is_rental_s_and_payment_s_own_transactions(self):
        script = self.replay.cycle_script(services=("rental", "payment"), consumers=False)
        self.assertEqual({who for who, _, _ in ceilings.script_statements(script)},
                         {"pgbench", "rental", "payment"})
        self.assertNotIn(".inbox", script)


if __name__ == "__main__":
    unittest.main()
