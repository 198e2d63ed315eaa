"""What the ceilings read of pgbench and count of its scripts: pure functions, no pgbench run."""

import unittest

from siege.ceilings import cycles_a_batch, parse_pgbench, script_statements

PGBENCH = """\
pgbench (15.10 (Debian 15.10-0+deb12u1))
transaction type: multiple scripts
scaling factor: 1
query mode: prepared
number of clients: 50
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 1300
number of failed transactions: 2 (0.154%)
latency average = 190.211 ms
initial connection time = 31.525 ms
tps = 262.863215 (without initial connection time)
SQL script 1: siege/results/work/fair-cycle.pgbench.sql
 - weight: 1000 (targets 96.9% of total)
 - 1260 transactions (96.9% of total, tps = 254.775762)
 - number of failed transactions: 2 (0.159%)
 - latency average = 195.105 ms
 - latency stddev = 40.218 ms
SQL script 2: siege/results/work/fair-relay-rental.pgbench.sql
 - weight: 31 (targets 3.0% of total)
 - 40 transactions (3.1% of total, tps = 8.087453)
 - number of failed transactions: 0 (0.000%)
 - latency average = 36.063 ms
 - latency stddev = 11.871 ms
"""

SCRIPT = """\
-- pgbench: the cycle's ids
SELECT gen_random_uuid() AS a \\gset
-- rental: the lookup
SELECT 1;
-- rental: the rent
BEGIN;
SELECT 2;
INSERT INTO t
    VALUES (1);
COMMIT;
-- outbox relay: rental
BEGIN;
SELECT true AS turn \\gset
\\if :turn
UPDATE o SET x = 1;
COMMIT;
\\else
ROLLBACK;
\\endif
"""


class PgbenchTest(unittest.TestCase):
    def test_the_report_and_each_script(self):
        figures = parse_pgbench(PGBENCH)
        self.assertEqual(figures["tps"], 262.863215)
        self.assertEqual(figures["latency_ms"], 190.211)
        self.assertEqual(figures["failed"], 2)
        self.assertEqual([s["count"] for s in figures["scripts"]], [1260, 40])
        self.assertEqual(figures["scripts"][0]["tps"], 254.775762)
        self.assertEqual(figures["scripts"][1]["latency_ms"], 36.063)

    def test_statements_and_transactions_of_each_party(self):
        self.assertEqual(script_statements(SCRIPT), [
            ("pgbench", 1, 1),
            # A statement outside BEGIN … COMMIT is a transaction of its own; one over two lines
            # is one statement.
            ("rental", 5, 2),
            # The branch a pass that does its work does not take is left out.
            ("outbox relay", 4, 1),
        ])


class BatchTest(unittest.TestCase):
    class Replay:
        """Consumers applying, in one cycle: view 3 events, points 2, payment 2."""

        def units(self):
            return [("rental", "", [], False)] + [(who, "", [], True) for who in
                                                  ["view"] * 3 + ["points"] * 2 + ["payment"] * 2]

    def test_the_median_consumer_sets_the_cycles_a_transaction(self):
        replay = self.Replay()
        # view 12 ÷ 3 = 4, points 10 ÷ 2 = 5, payment 4 ÷ 2 = 2: the median is 4.
        self.assertEqual(cycles_a_batch(replay, {"view": 12, "points": 10, "payment": 4}), 4)
        self.assertEqual(cycles_a_batch(replay, {}), 1)
        self.assertEqual(cycles_a_batch(replay, {"view": 300}), 16)
        self.assertEqual(cycles_a_batch(replay, {"view": 0.5}), 1)


if __name__ == "__main__":
    unittest.main()
