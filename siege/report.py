"""`siege/run report`: the fleet's figures on this machine, in one run, as siege/results/latest.md.

One local fleet (release build, one replica each, on a real Apache Kafka broker unless --kafka
mock) is started; then, in order:
1. idle RSS of every process, the Kafka broker's JVM included;
2. rent → return cycles through the gateway with siege (50 users): rents/s, returns/s, cycles/s,
   p50/p99 as siege saw them (10 ms steps) and as the gateway logged them (microseconds), and
   the event → board lag the view logged for every event those cycles made; meanwhile
   pg_stat_statements counts every statement the fleet runs (siege.statements);
3. one more cycle through the gateway, traced: every statement the fleet runs for it, with its
   parameters, from PostgreSQL's log (siege.statements);
4. the same cycles straight against rental: the gateway's cost as ratios;
5. the same Postgres work as bare SQL with pgbench (prepared, 50 clients), replaying the traced
   cycle's statements (siege.ceilings), twice: rental's and payment's own transactions (the
   ceiling), and every statement the fleet runs for a cycle, outbox relays and consumers included
   (the fair ceiling); each as a ratio;
6. loaded RSS (the highest seen during 2 and 4);
7. the event → board lag again under a steady load the machine keeps up with (about 100 rents/s);
8. each process restarted (SIGTERM) and timed from its start to ready.
Then that fleet stops and a second one starts on librdkafka's mock broker, where 2 (through the
gateway only) and 7 run again: what real Kafka costs, side by side with the mock.
"""

import datetime
import json
import os
import re
import subprocess
import threading
import time

from siege import ceilings, common, cpu_profile, statements
from siege.common import LOGS, REPO, percentile, say, wait_for
from siege.fleet import LOCAL_GATEWAY, PORTS, Fleet, build, metrics, rss_of, sample
from siege.plot import plot
from siege.workload import Load, books_for, cycles, ensure_siege, server_latencies, siege

USERS = 50
# The Kafka broker's row in the RSS tables.
KAFKA = "kafka broker (JVM)"
# The steady load for the event → board lag: 25 users who think 0–0.5 s, about 100 rents/s.
STEADY = {"users": 25, "delay": 0.5, "seconds": 20}
PGBENCH_SECONDS = 20


def rss_now(fleet, kafka_pid):
    """Every process's RSS in MB, the broker's JVM (when there is one) under KAFKA."""
    rss = {name: fleet.rss_mb(name) for name, _ in fleet.instances()}
    if kafka_pid:
        rss[KAFKA] = rss_of(kafka_pid)
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
    lags = [common.field(line, "lag_ms") for line in fleet.log_lines("view", since)
            if common.field(line, "message") == "event applied" and common.field(line, "lag_ms") is not None]
    return percentile(lags, 0.5), percentile(lags, 0.99), len(lags)


CONSUMERS = ("book-management", "payment", "user", "view", "points", "rental")


def batches():
    """{(service, what): (items, batches)} so far: events each consumer applied and its
    transactions (consumer_batch_events), events rental's and payment's relays published and
    their passes (outbox_pass_events)."""
    counts = {}
    for name in CONSUMERS:
        exposition = metrics(PORTS[name])
        for what in ("consumer_batch_events", "outbox_pass_events"):
            counts[name, what] = (sample(exposition, f"{what}_sum"),
                                  sample(exposition, f"{what}_count"))
    return counts


def per_batch(before, after, what):
    """Items per batch of `what` between two batches() readings, by service."""
    per = {}
    for (name, kind), (items, count) in after.items():
        items, count = items - before[name, kind][0], count - before[name, kind][1]
        if kind == what and count:
            per[name] = round(items / count, 1)
    return per


def through(load, fleet, base, who, reps, failures, counter=None):
    """Rent → return cycles against `base`; figures with the rent latencies `who` logged. With a
    statements.Counter, the statements the fleet ran from the first rent to the last return's
    last event applied, as pg_stat_statements counted them ("statements")."""
    offsets = {name: fleet.log_offset(name) for name in (who, "view")}
    batches_before = batches()
    rent, back, per_s = cycles(load, fleet, USERS, reps, {"rent": [201], "return": [200]},
                               failures, tag=f"-{who}", base=base,
                               books_ready=counter.reset if counter else None)
    wait_for("the board to show every return",
             lambda: not load.api.board(load.token, status="RENTED"), timeout=120)
    counted = None
    if counter:
        statements.settle(counter.url, statements.SERVICES)
        counted = {"cycles": sum(1 for _, status, _ in back["answers"] if status == 200),
                   "counts": counter.read()}
    # Only rents are POSTs to exactly this path; a return's path names its rental.
    rent_server = server_latencies(fleet, who, offsets[who], "/api/v1/rentals")
    batches_after = batches()
    return {
        "statements": counted,
        # Events each consumer applied in this phase, per transaction; each relay, per pass.
        "consumer_events_per_transaction": per_batch(batches_before, batches_after,
                                                     "consumer_batch_events"),
        "relay_events_per_pass": per_batch(batches_before, batches_after, "outbox_pass_events"),
        "rent": rent, "return": back,
        "rents_per_s": rent["siege"]["transaction_rate"],
        "returns_per_s": back["siege"]["transaction_rate"],
        "cycles_per_s": per_s,
        "rent_p50_ms": percentile(rent_server, 0.5),
        "rent_p99_ms": percentile(rent_server, 0.99),
        "client_rent_p50_ms": percentile([ms for _, _, ms in rent["answers"]], 0.5),
        "client_rent_p99_ms": percentile([ms for _, _, ms in rent["answers"]], 0.99),
        "lag": board_lag(fleet, offsets["view"]),
    }


def steady_lag(load, fleet, quick):
    """Event → board lag while customers rent at a steady pace the machine keeps up with."""
    seconds = 8 if quick else STEADY["seconds"]
    books = load.books(books_for(STEADY, seconds, STEADY["users"]), fleet)
    since = fleet.log_offset("view")
    steady = siege("report-steady", load.rent_lines(books), load.token, STEADY["users"],
                   seconds=seconds, delay=STEADY["delay"])
    rented = sum(1 for _, s, _ in steady["answers"] if s == 201)
    wait_for("the board to list the steady rents",
             lambda: len(load.api.board(load.token, status="RENTED")) >= rented, timeout=120)
    return steady["siege"]["transaction_rate"], board_lag(fleet, since)


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def kafka_version():
    """The Apache Kafka version scripts/kafka/pom.xml pins, or None."""
    try:
        pom = (REPO / "scripts" / "kafka" / "pom.xml").read_text()
    except OSError:
        return None
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    return found and found[1]


def kafka_ready_s():
    """Seconds from the broker's start to its first answer, as dev.sh logged them (whole
    seconds), or None."""
    try:
        log = (LOGS / "dev.sh.log").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"Kafka answers at \S+ \(ready in (?:(\d+)m )?(\d+)s\)", log)
    return found and int(found[1] or 0) * 60 + int(found[2])


def on_mock_broker(reps, quick):
    """The 50-user cycles through the gateway and the steady board lag again, on a fresh fleet
    with librdkafka's mock broker: what the same figures are without real Kafka."""
    failures = []
    fleet = Fleet(kafka="mock")
    try:
        fleet.start()
        # As long to settle as the first fleet had.
        time.sleep(3)
        load = Load(LOCAL_GATEWAY)
        gateway = through(load, fleet, LOCAL_GATEWAY, "gateway", reps, failures)
        steady_rate, steady = steady_lag(load, fleet, quick)
    finally:
        fleet.stop()
    return {"broker": fleet.broker, "gateway": gateway, "steady_rents_per_s": steady_rate,
            "steady": steady, "broken": [f"mock broker: {f}" for f in failures]}


def profiled(args, reps):
    """--profile-cpu: the gateway's 50-user cycles alone, under perf (siege.cpu_profile); the
    report's other figures are not measured, as perf would skew them."""
    cpu_profile.ensure_tools()
    fleet = Fleet()
    try:
        fleet.start()
        time.sleep(3)
        load = Load(LOCAL_GATEWAY)
        profiler = cpu_profile.Profiler(fleet, fleet.kafka_pid())
        profiler.start()
        try:
            gateway = through(load, fleet, LOCAL_GATEWAY, "gateway", reps, [])
        finally:
            shares = profiler.stop()
    finally:
        fleet.stop()
    say(f"under perf: {gateway['rents_per_s']:.0f} rents/s, rent p99 "
        f"{fmt(gateway['rent_p99_ms'])} ms (gateway's log), {gateway['cycles_per_s']:.0f} cycles/s")
    say("CPU: " + ", ".join(f"{k} {v} %" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])))
    return 0


def attempt(what, failures, work):
    """work()'s result, or None when it failed: the report's other figures stand on their own,
    so they are written, and what failed is said (in `failures`)."""
    try:
        return work()
    except (RuntimeError, ValueError, KeyError, StopIteration, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or error
        say(f"{what} failed: {detail}")
        failures.append(f"{what}: {str(detail).strip()}")
        return None


def traced_cycle(fleet, load, url):
    """One rent → return cycle through the gateway traced (siege.statements), kept in
    results/work/captured-cycle.json; its replay."""
    say("one more cycle through the gateway, its statements traced (log_statement = all)")
    captured = statements.trace_cycle(fleet, load, url)
    common.WORK.mkdir(parents=True, exist_ok=True)
    (common.WORK / "captured-cycle.json").write_text(
        json.dumps(captured, indent=1, ensure_ascii=False) + "\n")
    by = {}
    for unit in captured["cycle"]:
        by[unit["service"]] = by.get(unit["service"], 0) + 1
    say("traced: " + ", ".join(f"{who} {n} transaction(s)" for who, n in by.items())
        + f"; relay passes of {', '.join(captured['relays']) or 'none'}")
    return statements.Replay(captured)


def fair_ceiling(url, seconds, replay, gateway, failures):
    """The fair ceiling (siege.ceilings.fair) in its two shapes, the better kept: consumers with
    a transaction an event, and with as many events a transaction as the fleet's had (batching
    need not win in bare SQL, where a COMMIT costs little). Relay passes weighted as the fleet's
    relays made them in the gateway's cycles: pg_stat_statements' rows a marking statement,
    else the relays' outbox_pass_events. With the counts, what the fleet ran a cycle that the
    replay does not hold ("measured")."""
    counted = gateway["statements"]
    measured = statements.relay_events_per_pass(counted["counts"]) if counted else {}
    per_pass = {schema: measured.get(service) or gateway["relay_events_per_pass"].get(service)
                for schema, service in statements.SERVICES.items()}
    batch = ceilings.cycles_a_batch(replay, gateway["consumer_events_per_transaction"])
    shapes = [ceilings.fair(url, USERS, seconds, replay, per_pass, cycles)
              for cycles in sorted({1, batch})]
    fair = max(shapes, key=lambda shape: shape["cycles_per_s"])
    fair["shapes"] = [{k: shape[k] for k in ("cycles_a_consumer_transaction", "cycles_per_s",
                                             "statements_per_cycle", "transactions_per_cycle")}
                      for shape in shapes]
    if any(shape["failed"] for shape in shapes):
        failures.append(f"fair ceiling: {sum(s['failed'] for s in shapes)} pgbench transactions failed")
    if counted and counted["cycles"]:
        ran = statements.per_cycle(counted["counts"], counted["cycles"])
        lacking = statements.not_replayed(replay, ran)
        for missing in lacking:
            say(f"the fleet ran {missing['service']}'s `{missing['statement']}` "
                f"{missing['per_cycle']:.2f} times a cycle; the replay has it not")
        fair["measured"] = {"cycles": counted["cycles"],
                            "statements_per_cycle": round(sum(ran.values()), 2),
                            "not_replayed": lacking}
    return fair


def main(args):
    ensure_siege()
    if not args.no_build:
        build()
    if args.profile_cpu:
        return profiled(args, 8 if args.quick else 40)
    reps = 8 if args.quick else 40
    failures = []
    fleet = Fleet()
    try:
        fleet.start()
        broker, kafka_ready = fleet.broker, kafka_ready_s()
        kafka_pid = fleet.kafka_pid()
        if broker == "real" and not kafka_pid:
            say("dev.sh wrote no kafka.pid: the broker's RSS is left out")
        time.sleep(3)
        idle = rss_now(fleet, kafka_pid)
        load = Load(LOCAL_GATEWAY)
        url = statements.pg_url(fleet)
        counter, why = statements.Counter.start(url)
        if not counter:
            say(f"pg_stat_statements is not loaded ({why[0]}): the relays' passes are weighted "
                "from their metrics")
        watch = RssWatch(fleet, kafka_pid)
        gateway = through(load, fleet, LOCAL_GATEWAY, "gateway", reps, failures, counter)
        replay = attempt("tracing a cycle's statements", failures, lambda: traced_cycle(fleet, load, url))
        direct = through(load, fleet, f"http://127.0.0.1:{PORTS['rental']}", "rental", reps,
                         failures)
        loaded = watch.stop()
        steady_rate, steady = steady_lag(load, fleet, args.quick)
        seconds = 5 if args.quick else PGBENCH_SECONDS
        ceiling = replay and attempt("the ceiling", failures,
                                     lambda: ceilings.ceiling(url, USERS, seconds, replay))
        fair = replay and attempt("the fair ceiling", failures,
                                  lambda: fair_ceiling(url, seconds, replay, gateway, failures))
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
            say(f"the mock broker's fleet failed: {error}")
            failures.append(f"mock broker: {error}")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    figures = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit, "cores": os.cpu_count(), "users": USERS, "cycles_each": USERS * reps,
        "build": Fleet.profile, "broker": broker,
        "kafka_version": kafka_version() if broker == "real" else None,
        "gateway": {k: v for k, v in gateway.items() if k not in ("rent", "return", "statements")},
        "direct": {k: v for k, v in direct.items() if k not in ("rent", "return", "statements")},
        "steady_rents_per_s": steady_rate, "steady_board_lag_ms": steady[:2],
        "pgbench_cycles_per_s": ceiling and ceiling[0], "pgbench_latency_ms": ceiling and ceiling[1],
        "pgbench_statements_per_cycle": ceiling and ceiling[2],
        "fair_pgbench": fair,
        "rss_idle_mb": idle, "rss_loaded_mb": loaded, "startup_to_ready_s": startup,
        "kafka_start_to_ready_s": kafka_ready if broker == "real" else None,
        "mock_broker": mock and {
            "broker": mock["broker"],
            "gateway": {k: v for k, v in mock["gateway"].items()
                        if k not in ("rent", "return", "statements")},
            "steady_rents_per_s": mock["steady_rents_per_s"],
            "steady_board_lag_ms": mock["steady"][:2],
        },
        "broken": failures,
    }
    common.OUT.mkdir(parents=True, exist_ok=True)
    (common.OUT / "latest.json").write_text(json.dumps(figures, indent=2) + "\n")
    series = [("through the gateway", gateway["rent"], gateway["return"]),
              ("straight to rental", direct["rent"], direct["return"])]
    if mock:
        series.append(("gateway, mock broker", mock["gateway"]["rent"], mock["gateway"]["return"]))
    plot("latest", "report: rent, then return, 50 users: through the gateway and straight to rental"
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
        ("rent → return cycles/s as bare SQL (pgbench, 50 clients)", fmt(ceiling and ceiling[0], 0),
         (f"the database's ceiling: rental's and payment's own statements, as the run traced them "
          f"({ceiling[2]} a cycle); {fmt(ceiling[1], 2)} ms a cycle") if ceiling else "failed: see below"),
        ("fleet ÷ ceiling (cycles/s)", ratio(g["cycles_per_s"], ceiling and ceiling[0]),
         "gateway cycles ÷ pgbench cycles"),
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
        f"one local fleet ({Fleet.profile} build, one replica each) {on}"
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
        "The plot of rents and returns over time, `latest.png`, is written beside this file by "
        "the run (a build artefact, not committed).",
        "",
        "Loaded RSS is the highest seen while the cycles above ran; start → ready is from the "
        "process's start (after SIGTERM, dev.sh starts it again) to its first 200 on `/readyz` (on its "
        "operations port). "
        "Both ceilings replay, on copies of the tables they touch, the statements the fleet ran "
        "for one rent and its return through the gateway in this run: traced from PostgreSQL's log "
        "(`log_statement = all`), each with the values it was bound to, the cycle's own ids made "
        "afresh for each pgbench cycle (`siege/statements.py`). The ceiling's cycle is rental's "
        "and payment's own transactions; it leaves out the outbox relays and the consumers, which "
        "the fleet also runs. The fair ceiling's cycle is every transaction of the traced cycle ("
        + (", ".join(f"{who} {v['statements']:g}" for who, v in fair["by_service"].items()
                     if "relay" not in who) + " statements" if fair else "–")
        + ", BEGIN and COMMIT counted: each service's own work, its outbox events, every "
        "consumer's inbox row and effect) and the outbox relays' passes (turn, pending events, "
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
        + ")"
        + (f". pg_stat_statements counted {fair['measured']['statements_per_cycle']:.1f} statements a "
           "cycle in the gateway's cycles, what runs by the clock included"
           + ("; of those that ran at least every other cycle, the replay lacks "
              + ", ".join(f"{m['service']}'s `{m['statement']}` ({m['per_cycle']:.2f} a cycle)"
                          for m in fair["measured"]["not_replayed"])
              if fair["measured"]["not_replayed"] else "; the replay holds every statement that ran "
              "at least every other cycle")
           if fair and fair.get("measured") else "")
        + ". Each pgbench client rents its own book as its own customer; siege's cycles are one "
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
    (common.OUT / "latest.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 1 if failures else 0
