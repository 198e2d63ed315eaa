"""`siege/run report`: the fleet's figures on this machine, in one run, as siege/results/latest.md.

One local fleet (release build, one replica each, on a real Apache Kafka broker unless --kafka
mock) is started; then, in order:
1. idle RSS of every process, the Kafka broker's JVM included;
2. rent → return cycles through the gateway with siege (50 users): rents/s, returns/s, cycles/s,
   p50/p99 as siege saw them (10 ms steps) and as the gateway logged them (microseconds), and
   the event → board lag the view logged for every event those cycles made;
3. the same cycles straight against rental: the gateway's cost as ratios;
4. the same Postgres work as bare SQL with pgbench (rental's and payment's statements of a rent
   and a return, prepared, 50 clients): the ceiling the database sets, as a ratio;
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
SELECT gen_random_uuid() AS rental_id, gen_random_uuid() AS payment_id, gen_random_uuid() AS user_id \\gset
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


def pg_url(fleet):
    admin = urllib.parse.urlsplit(fleet.settings["DATABASE_ADMIN_URL"])
    return urllib.parse.urlunsplit(admin._replace(path="/" + fleet.settings["FLEET_DB_NAME"]))


def pgbench(fleet, clients, seconds):
    """Rent → return cycles per second as bare SQL."""
    url = pg_url(fleet)
    tables = [("catalogue", "rental.catalogue"), ("rentals", "rental.rentals"),
              ("rental_outbox", "rental.outbox"), ("payments", "payment.payments"),
              ("payment_outbox", "payment.outbox")]
    setup = "DROP SCHEMA IF EXISTS pgbench_rent CASCADE; CREATE SCHEMA pgbench_rent;\n" + "".join(
        f"CREATE TABLE pgbench_rent.{name} (LIKE {source} INCLUDING ALL);\n" for name, source in tables
    ) + ("INSERT INTO pgbench_rent.catalogue (book_id, title, rental_fee, updated_at) "
         "SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'Siege', 300, now() "
         f"FROM generate_series(0, {clients}) AS n;\n")
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", setup], check=True)
    script = run.RESULTS / "work" / "rent-return.pgbench.sql"
    script.write_text(PGBENCH_SCRIPT.replace("{PAYLOAD}", PAYLOAD.replace("'", "''")))
    run.say(f"pgbench -M prepared -c {clients} -T {seconds}: a rent and a return as bare SQL")
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                          "-T", str(seconds), "-f", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    subprocess.run(["psql", url, "-X", "-q", "-c", "DROP SCHEMA pgbench_rent CASCADE"], check=True)
    tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines()
               if line.startswith("tps ="))
    latency = next((float(line.split("=")[1].split()[0]) for line in out.splitlines()
                    if line.startswith("latency average")), None)
    return tps, latency


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


def through(load, fleet, base, who, reps, failures):
    """Rent → return cycles against `base`; figures with the rent latencies `who` logged."""
    offsets = {name: fleet.log_offset(name) for name in (who, "view")}
    rent, back, per_s = run.cycles(load, fleet, USERS, reps, {"rent": [201], "return": [200]},
                                   failures, tag=f"-{who}", base=base)
    run.wait_for("the board to show every return",
                 lambda: not load.api.board(load.token, status="RENTED"), timeout=120)
    # Only rents are POSTs to exactly this path; a return's path names its rental.
    rent_server = run.server_latencies(fleet, who, offsets[who], "/api/v1/rentals")
    return {
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


def main(args):
    run.ensure_siege()
    if not args.no_build:
        run.build()
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
        ceiling, sql_latency = pgbench(fleet, USERS, 5 if args.quick else PGBENCH_SECONDS)
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
         f"the database's ceiling; {fmt(sql_latency, 2)} ms a cycle"),
        ("fleet ÷ ceiling (cycles/s)", f"{g['cycles_per_s'] / ceiling:.2f}", "gateway cycles ÷ pgbench cycles"),
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
        "The pgbench cycle is rental's and payment's statements of a rent and a return on copies "
        "of their tables (`siege/report.py`); it leaves out the outbox relays and the consumers, "
        "which the fleet also runs. The fleet's cycles share the machine's two cores between siege, "
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
