"""siege, run over a file of URLs, and the workloads the scenarios and the report build from it:
a target gateway with a manager and a customer signed in (`Load`), books rentals can rent, rent
then return cycles, rents for a time while something else happens, and the checks and figures of
what siege saw.

siege cannot carry one answer into the next request (a rent's id into its return). Two things
make rent → return cycles possible anyway: siege gives each simulated user its own stretch of
the URL file, so users never rent the same book; and the rentals are read back from the board
and their returns sieged as a second phase.
"""

import json
import math
import re
import shutil
import subprocess
import threading
import time
import uuid

from siege import common
from siege.api import Api
from siege.common import apt_install, percentile, say, statuses, wait_for
from siege.fleet import manager, metrics, sample

VERBOSE_LINE = re.compile(r"HTTP/\d\.\d (\d{3})\s+([\d.]+) secs:\s+\d+ bytes ==> (\w+)\s+(\S+)")
SIEGERC = """\
verbose = true
color = off
quiet = false
show-logfile = false
logging = false
protocol = HTTP/1.1
connection = keep-alive
timeout = 30
# siege gives up after this many failed transactions; a 503 counts as one.
failures = 100000000
internet = false
parser = false
json_output = false
"""


def ensure_siege():
    if shutil.which("siege") is None:
        say("installing siege (Debian's package)")
        apt_install("siege")
    return shutil.which("siege")


def siege(name, lines, token, concurrency, repetitions=None, seconds=None, delay=None):
    """Runs siege over `lines` (one "URL [POST [body]]" each) and returns what it measured:
    siege's own summary and every answer's time (since the start), status and latency."""
    work = common.WORK
    work.mkdir(parents=True, exist_ok=True)
    (work / "siegerc").write_text(SIEGERC)
    urls = work / f"{name}.urls"
    urls.write_text("\n".join(lines) + "\n")
    # Line-buffered, so each answer is timed as siege prints it, not as a pipe buffer fills.
    command = ["stdbuf", "-oL", "siege", "-R", str(work / "siegerc"), "-f", str(urls), "-c", str(concurrency),
               "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json"]
    command += ["-r", str(repetitions)] if repetitions else ["-t", f"{seconds}S"]
    command += ["-d", str(delay)] if delay else ["-b"]
    say(f"{name}: siege -c {concurrency} " + (f"-r {repetitions}" if repetitions else f"-t {seconds}S")
        + (f" -d {delay}" if delay else " -b"))
    started = time.monotonic()
    answers = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace") as run:
        summary = []
        reader = threading.Thread(target=lambda: summary.extend(run.stderr), daemon=True)
        reader.start()
        for line in run.stdout:
            answer = parse_answer(line)
            if answer:
                answers.append((time.monotonic() - started, *answer))
        run.wait()
        reader.join()
    figures = parse_summary(summary)
    if "transactions" not in figures:
        raise SystemExit(f"siege printed no summary:\n{''.join(summary)}")
    return {"siege": figures, "answers": answers, "started": started}


def parse_answer(line):
    """(status, latency in ms) of one answer as verbose siege prints it, or None for any other
    line."""
    found = VERBOSE_LINE.search(line)
    return (int(found[1]), float(found[2]) * 1000) if found else None


def parse_summary(lines):
    """siege's closing summary ("Transactions: 500 hits", "Availability: 100.00 %", ...) as
    {"transactions": 500.0, "availability": 100.0, ...}."""
    figures = {}
    for line in lines:
        key, _, value = line.partition(":")
        number = re.match(r"\s*([\d.]+)", value)
        if number and key.strip():
            figures[key.strip().lower().replace(" ", "_")] = float(number[1])
    return figures


def server_latencies(fleet, instance, since, uri):
    """Latencies in ms the process itself logged since an offset of its log, for POSTs to `uri`
    (the kit logs each request's latency in microseconds)."""
    found = []
    for line in fleet.log_lines(instance, since):
        span = line.get("span", {})
        if common.field(line, "message") != "finished processing request" or span.get("uri") != uri \
                or span.get("method") != "POST":
            continue
        latency = re.match(r"([\d.]+) μs", str(common.field(line, "latency")))
        if latency:
            found.append(float(latency[1]) / 1000)
    return found


class Load:
    """A target gateway with a manager and one customer signed in."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        # A 503 (a service still starting, say) is asked again for up to 30 s.
        self.api = Api(self.url, patience=30)
        self.manager = self.api.token(*manager())
        self.customer_id, self.token = self.api.customer()
        self.first_requests_succeed()

    def first_requests_succeed(self):
        """The fleet says it is ready, so a signed-in request succeeds at once: a service turns
        ready only once it holds the signing keys (fetched, or kept from an earlier fetch)."""
        for path in [f"/api/v1/rentals/{uuid.uuid4()}", f"/api/v1/views/rentals/{uuid.uuid4()}"]:
            status, body = self.api.call("GET", path, token=self.token)[:2]
            if status != 404:
                raise SystemExit(f"the fleet is ready, yet GET {path} with a valid token answered "
                                 f"{status} (expected 404): {body}")

    def books(self, count, fleet=None):
        """`count` new books that rental can rent (its catalogue replica has them)."""
        def applied():
            return sum(sample(metrics(p), 'events_consumed_total{outcome="applied",topic="book.events"')
                       for _, p in fleet.instances("rental"))
        before = applied() if fleet else 0
        say(f"registering {count} books")
        books = self.api.books(self.manager, count)
        if fleet:
            def known():
                return applied() >= before + len(books)
            wait_for("rental's catalogue to hold every book", known, timeout=300)
        else:
            board = lambda: len(self.api.book_board(self.manager)) >= len(books)
            wait_for("the book board to list every book", board, timeout=300, every=2)
            time.sleep(2)
        return books

    def rent_lines(self, books, base=None):
        return [f"{base or self.url}/api/v1/rentals POST {json.dumps({'bookId': b})}" for b in books]

    def rented(self, count):
        """Ids of this customer's RENTED rentals, once the board lists `count` of them."""
        def listed():
            lines = self.api.board(self.token, status="RENTED")
            return [line["id"] for line in lines] if len(lines) >= count else None
        return wait_for(f"the board to list {count} rentals", listed, timeout=120)

    def return_lines(self, rentals, base=None):
        return [f"{base or self.url}/api/v1/rentals/{r}/return POST" for r in rentals]


def check(phase, run, allowed, failures):
    """Adds to `failures` the answers of `run` whose status is not in `allowed`."""
    wrong = {s: n for s, n in statuses(run["answers"]).items() if int(s) not in allowed}
    if wrong:
        failures.append(f"{phase}: answers other than {allowed}: {wrong}")


def summary_of(phase, run, extra=None):
    """A phase's figures as a result file keeps them: siege's, statuses, p50 and p99."""
    answers = run["answers"]
    latencies = [ms for _, _, ms in answers]
    figures = run["siege"]
    result = {
        "phase": phase,
        "transactions": int(figures["transactions"]),
        "availability_percent": figures.get("availability"),
        "elapsed_s": figures.get("elapsed_time"),
        "rate_per_s": figures.get("transaction_rate"),
        "statuses": statuses(answers),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "siege": figures,
    }
    return result | (extra or {})


def cycles(load, fleet, concurrency, repetitions, expect, failures, tag="", base=None,
           books_ready=None):
    """Rent then return concurrency * repetitions books, against the gateway or `base`; the two
    phases' figures and the cycles per second. `books_ready()` is called once the books are
    registered and known, before the first rent."""
    books = load.books(concurrency * repetitions, fleet)
    if books_ready:
        books_ready()
    rent = siege(f"rent{tag}-c{concurrency}", load.rent_lines(books, base), load.token,
                 concurrency, repetitions=repetitions)
    check(f"rent{tag} at {concurrency}", rent, expect["rent"], failures)
    rentals = load.rented(sum(1 for _, s, _ in rent["answers"] if s == 201))
    back = siege(f"return{tag}-c{concurrency}", load.return_lines(rentals, base), load.token,
                 concurrency, repetitions=max(1, len(rentals) // concurrency))
    check(f"return{tag} at {concurrency}", back, expect["return"], failures)
    rent_s, back_s = rent["siege"]["elapsed_time"], back["siege"]["elapsed_time"]
    return rent, back, len(rentals) / (rent_s + back_s) if rent_s + back_s else 0.0


def books_for(spec, seconds, concurrency):
    """Enough books that no user rents one twice: a user makes at most one request per
    delay/2 on average (siege's delay is random in 0..delay), with a wide margin."""
    return math.ceil(seconds / (spec["delay"] / 2 + 0.002) * 1.4) * concurrency


def timed_rents(spec, load, fleet, quick, during=None):
    """Rents for the scenario's `seconds` with its think time, `during(actions)` running beside
    them in a thread; siege's run and the actions, timed from siege's start."""
    seconds = spec.get("quick_seconds", 12) if quick else spec["seconds"]
    concurrency = spec["concurrency"]
    count = books_for(spec, seconds, concurrency)
    books = load.books(count, fleet)
    actions = []
    worker = None
    if during:
        worker = threading.Thread(target=during, args=(actions,), daemon=True)
    started = time.monotonic()
    if worker:
        worker.start()
    run = siege(spec["name"], load.rent_lines(books), load.token, concurrency, seconds=seconds,
                delay=spec["delay"])
    if worker:
        worker.join()
    # Actions are timed from the runner's start; siege's answers from siege's.
    offset = run["started"] - started
    return run, [(at - offset, what) for at, what in actions]


