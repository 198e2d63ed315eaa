"""What the runner reads of siege and computes of the answers: pure functions, no siege run."""

import unittest

from siege.common import per_second, percentile, statuses
from siege.workload import books_for, parse_answer, parse_summary

SUMMARY = """\

Transactions:		         500 hits
Availability:		      100.00 %
Elapsed time:		        2.34 secs
Data transferred:	        0.16 MB
Response time:		        0.21 secs
Transaction rate:	      213.68 trans/sec
Throughput:		        0.07 MB/sec
Concurrency:		       45.06
Successful transactions:         500
Failed transactions:	           0
Longest transaction:	        0.45
Shortest transaction:	        0.01
"""


class SiegeOutputTest(unittest.TestCase):
    def test_a_verbose_answer_line(self):
        line = "HTTP/1.1 201     0.02 secs:     345 bytes ==> POST http://127.0.0.1:8080/api/v1/rentals\n"
        self.assertEqual(parse_answer(line), (201, 20.0))
        self.assertEqual(parse_answer("HTTP/1.1 503     1.20 secs:       0 bytes ==> POST /x"), (503, 1200.0))
        self.assertIsNone(parse_answer("** SIEGE 4.1.6\n"))

    def test_the_summary(self):
        figures = parse_summary(SUMMARY.splitlines(keepends=True))
        self.assertEqual(figures["transactions"], 500.0)
        self.assertEqual(figures["availability"], 100.0)
        self.assertEqual(figures["elapsed_time"], 2.34)
        self.assertEqual(figures["transaction_rate"], 213.68)
        self.assertEqual(figures["failed_transactions"], 0.0)
        self.assertEqual(parse_summary(["siege aborted due to excessive socket failure\n"]), {})


class AnswersTest(unittest.TestCase):
    answers = [(0.1, 201, 10.0), (0.5, 201, 30.0), (1.2, 503, 5.0), (1.9, 201, 20.0)]

    def test_percentile_is_the_nearest_rank(self):
        self.assertIsNone(percentile([], 0.5))
        self.assertEqual(percentile([3, 1, 2, 4], 0.5), 2)
        self.assertEqual(percentile(list(range(1, 101)), 0.99), 99)
        self.assertEqual(percentile([7], 0.99), 7)

    def test_statuses(self):
        self.assertEqual(statuses(self.answers), {"201": 3, "503": 1})

    def test_per_second(self):
        rows = per_second(self.answers, offset=10)
        self.assertEqual([r["second"] for r in rows], [10, 11])
        self.assertEqual((rows[0]["ok"], rows[0]["failed"]), (2, 0))
        self.assertEqual((rows[1]["ok"], rows[1]["failed"]), (1, 1))
        self.assertEqual(rows[0]["p50_ms"], 10.0)

    def test_books_for_leaves_every_user_a_book_a_request(self):
        # 20 s at a request per 0.252 s at most: 80 a user, 112 with the margin.
        self.assertEqual(books_for({"delay": 0.5}, 20, 10), 1120)


if __name__ == "__main__":
    unittest.main()
