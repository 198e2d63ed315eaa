"""Load scenarios against the fleet with siege, and the benchmark report.

usage: siege/run <scenario> [--url URL] [--kafka real|mock] [--quick] [--no-build] [--debug]
       siege/run report [--kafka real|mock] [--quick] [--no-build] [--debug] [--profile-cpu]
       siege/run --list

<scenario> is a file in siege/scenarios (baseline, circuit-breaker, rolling-restart, scale-out,
hpa, cluster-rollout, cluster-faults, abuse). Without --url the runner builds the fleet in
release mode (scripts/dev.sh --build-only, which alone decides where binaries go) and starts
it with scripts/dev.sh (a fresh database and broker, the rate limit raised for one load client)
on a real Apache Kafka broker or, with
--kafka mock, librdkafka's mock broker, and stops it at the end; with --url it drives the
gateway there (scenarios that change the fleet need a local one). Every result names its broker.
It prepares what the load needs through the public API (a customer, books), runs siege
(installed from Debian's packages when missing), prints a summary, and writes
siege/results/<scenario>.json and .png (throughput and latency over time). It exits 1 when a
scenario's promise is broken.

`report` measures, in one run: rents/s and p50/p99 through the gateway, the same rent and
return done straight against rental and as bare SQL with pgbench (ceilings and ratios), event →
board lag, and every process's RSS idle and loaded (the Kafka broker's JVM too) and its
startup-to-ready time; then, on a second fleet with the mock broker, the gateway's figures and
the board lag again, side by side with real Kafka's; it writes siege/results/latest.md. With
--profile-cpu the fleet runs a release build with symbols and frame pointers, and perf samples the
whole machine while the cycles run through the gateway: siege/results/profile/ (profile.md and a
flame graph per process; siege.cpu_profile).

`siege/run` runs this module (`python3 -m siege.runner`) from any directory.

Environment: FLEET_MANAGER_EMAIL, FLEET_MANAGER_PASSWORD (the manager to sign in as; dev.sh's by
default), FLEET_KAFKA (the default of --kafka), KAFKA_BROKERS (a Kafka of your own instead of
one started here, unless --kafka mock), CARGO_TARGET_DIR (where dev.sh builds).
"""

import argparse
import json
import os
import signal
import sys
import time
import tomllib

from siege import abuse, cluster, common, report
from siege.api import Unexpected
from siege.common import SCENARIOS, per_second, percentile, say, wait_for
from siege.fleet import LOCAL_GATEWAY, BROKERS, Fleet, build, metrics, sample
from siege.plot import ensure_gnuplot, plot
from siege.workload import Load, check, cycles, ensure_siege, siege, summary_of, timed_rents


def baseline(spec, load, fleet, quick):
    """Rent → return cycles at each of the scenario's concurrencies."""
    failures, phases, series = [], [], []
    reps = 5 if quick else spec["repetitions"]
    for concurrency in spec["concurrency"]:
        rent, back, per_s = cycles(load, fleet, concurrency, reps, spec["expect"], failures)
        phases.append(summary_of(f"rent, {concurrency} users", rent, {"cycles_per_s": per_s}))
        phases.append(summary_of(f"return, {concurrency} users", back))
        series.append((f"{concurrency} users", rent, back))
        say(f"{concurrency} users: {per_s:.0f} cycles/s, rents {rent['siege']['transaction_rate']:.0f}/s, "
            f"returns {back['siege']['transaction_rate']:.0f}/s")
    return phases, series, failures, []


def circuit_breaker(spec, load, fleet, quick):
    """Rents while payment is slow: answered 201 or 503, none slower than the timeout allows."""
    failures = []
    run, _ = timed_rents(spec, load, fleet, quick)
    check("rent", run, spec["expect"]["rent"], failures)
    answers = run["answers"]
    refused = [ms for _, s, ms in answers if s == 503]
    fast = [ms for ms in refused if ms <= spec["expect"]["fast_ms"]]
    slowest = max((ms for _, _, ms in answers), default=0)
    if slowest > spec["expect"]["slowest_ms"]:
        failures.append(f"an answer took {slowest:.0f} ms, beyond the payment timeout's reach")
    rented = sum(1 for _, s, _ in answers if s == 201)
    elapsed = run["siege"]["elapsed_time"]
    phase = summary_of("rent, 100 users, payment 400–620 ms", run, {
        "goodput_per_s": rented / elapsed if elapsed else 0,
        "refused": len(refused),
        "refused_fast": len(fast),
        "fast_fail_p50_ms": percentile(fast, 0.5),
        "fast_fail_p99_ms": percentile(fast, 0.99),
        "refused_at_timeout_p50_ms": percentile([ms for ms in refused if ms > spec["expect"]["fast_ms"]], 0.5),
        "slowest_ms": slowest,
    })
    if fleet:
        expositions = [metrics(p) for _, p in fleet.instances("rental")]
        phase["payment_calls"] = {
            outcome: sum(sample(e, f'payment_calls_total{{outcome="{outcome}"') for e in expositions)
            for outcome in ("approved", "timeout", "circuit_open", "overloaded", "failed")}
    return [phase], [("rents", run, None)], failures, []


def rolling_restart(spec, load, fleet, quick):
    """Rents while every replica of the plan is SIGTERMed, drained and started again in turn."""
    if not fleet:
        raise SystemExit("rolling-restart restarts local processes: run it without --url")
    failures = []
    plan = spec["restart"]

    def restarts(actions):
        origin = time.monotonic()
        time.sleep(plan["first_after"])
        for instance in plan["instances"]:
            actions.append((time.monotonic() - origin, f"SIGTERM {instance}"))
            took = fleet.restart(instance)
            actions.append((time.monotonic() - origin, f"{instance} ready ({took:.2f} s)"))
            time.sleep(plan["pause"])

    run, actions = timed_rents(spec, load, fleet, quick, during=restarts)
    check("rent", run, spec["expect"]["rent"], failures)
    elapsed = run["siege"]["elapsed_time"]
    done = [what for at, what in actions if " ready " in what and at < elapsed]
    if len(done) != len(plan["instances"]):
        failures.append(f"the run ended with only {done} restarted and ready")
    availability = run["siege"].get("availability")
    if availability != 100.0:
        failures.append(f"availability {availability} %, not 100.00 %")
    phase = summary_of("rent, 25 users, every replica restarted", run, {"restarts": actions})
    return [phase], [("rents", run, None)], failures, actions


def catch_up(fleet, load, rentals):
    """Pauses view, returns every rental, resumes view: seconds and events/s until applied."""
    views = fleet.instances("view")
    def applied():
        return sum(sample(metrics(p), 'events_consumed_total{outcome="applied",topic="rental.events"')
                   for _, p in views)
    before = applied()
    for name, _ in views:
        os.kill(fleet.pid(name), signal.SIGSTOP)
    try:
        run = siege("return-while-view-paused", load.return_lines(rentals), load.token, 50,
                    repetitions=max(1, len(rentals) // 50))
    finally:
        resumed = time.monotonic()
        for name, _ in views:
            os.kill(fleet.pid(name), signal.SIGCONT)
    wait_for("view to apply every return", lambda: applied() >= before + len(rentals), timeout=300,
             every=0.1)
    took = time.monotonic() - resumed
    return run, took, len(rentals) / took


def scale_out(spec, load_for, quick):
    """Rent throughput and the view's catch-up with each fleet shape: the scenario's outcome, and the broker its fleets ran on."""
    failures, phases, series, broker = [], [], [], None
    reps = 10 if quick else spec["repetitions"]
    concurrency = spec["concurrency"]
    for shape in spec["fleets"]:
        replicas = shape["replicas"]
        label = f"payment ×{replicas['payment']}, view ×{replicas['view']}"
        fleet = Fleet(replicas)
        try:
            fleet.start()
            broker = fleet.broker
            load = load_for(fleet)
            books = load.books(concurrency * reps, fleet)
            rent = siege(f"rent-{label}", load.rent_lines(books), load.token, concurrency,
                         repetitions=reps)
            check(f"rent with {label}", rent, spec["expect"]["rent"], failures)
            rentals = load.rented(sum(1 for _, s, _ in rent["answers"] if s == 201))
            back, took, rate = catch_up(fleet, load, rentals)
            check(f"return with {label}", back, spec["expect"]["return"], failures)
            phases.append(summary_of(f"rent, {label}", rent,
                                     {"view_catch_up_s": took, "view_catch_up_events_per_s": rate}))
            series.append((label, rent, None))
            say(f"{label}: {rent['siege']['transaction_rate']:.0f} rents/s; view caught up on "
                f"{len(rentals)} returns in {took:.2f} s ({rate:.0f} events/s)")
        finally:
            fleet.stop()
    return (phases, series, failures, []), broker


def write_results(name, spec, target, broker, phases, series, failures, actions):
    """results/<name>.json and .png, and the summary printed; whether the promise was kept."""
    out = common.OUT
    out.mkdir(parents=True, exist_ok=True)
    png = plot(name, f"{name}: {spec['description']}", series, actions)
    result = {
        "scenario": name,
        "description": spec["description"],
        "target": target,
        "broker": broker,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "phases": phases,
        "per_second": {label: per_second(first["answers"]) for label, first, _ in series},
        "promise_kept": not failures,
        "broken": failures,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}: {spec['description']}")
    print(f"  {target}; broker: {broker} ({BROKERS.get(broker, 'unknown')})")
    for phase in phases:
        extras = {k: v for k, v in phase.items() if k not in ("phase", "siege", "restarts")}
        print(f"  {phase['phase']}:")
        for key, value in extras.items():
            if isinstance(value, float):
                value = f"{value:.2f}"
            print(f"    {key:28} {value}")
    for at, what in actions:
        print(f"  at {at:6.1f} s  {what}")
    print(f"  results: {out / (name + '.json')}, {png}")
    if failures:
        print("  PROMISE BROKEN:\n    " + "\n    ".join(failures))
    else:
        print("  promise kept")
    return not failures


def arguments(argv=None):
    parser = argparse.ArgumentParser(prog="siege/run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?")
    parser.add_argument("--url", help="drive the gateway at this URL instead of a local fleet")
    parser.add_argument("--quick", action="store_true", help="a short run, to try the runner")
    parser.add_argument("--kafka", choices=("real", "mock"),
                        default=os.environ.get("FLEET_KAFKA", "real"),
                        help="the local fleet's broker: Apache Kafka (default) or librdkafka's mock")
    parser.add_argument("--no-build", action="store_true", help="use the binaries dev.sh built")
    parser.add_argument("--debug", action="store_true",
                        help="a debug build, to try the runner quickly (its figures mean little)")
    parser.add_argument("--profile-cpu", action="store_true",
                        help="report only: perf over the loaded fleet, flame graphs in results/profile")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    return parser.parse_args(argv)


def main(argv=None):
    args = arguments(argv)
    try:
        return drive(args)
    except Unexpected as answer:
        raise SystemExit(str(answer)) from None


def drive(args):
    """The scenario `args` names, or the report; the exit status."""
    if args.debug:
        Fleet.profile = "debug"
    if args.profile_cpu:
        if args.scenario != "report" or args.debug:
            raise SystemExit("--profile-cpu goes with report, in the profiling build (not --debug)")
        Fleet.profile = "profiling"
    if args.quick:
        common.use_quick_results()
    Fleet.kafka = args.kafka
    names = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    if args.list or not args.scenario:
        for name in names:
            print(f"{name:16} {tomllib.loads((SCENARIOS / (name + '.toml')).read_text())['description']}")
        print(f"{'report':16} the benchmark report: siege/results/latest.md")
        return 0 if args.list else 2
    if args.scenario == "report":
        return report.main(args)
    if args.scenario not in names:
        raise SystemExit(f"unknown scenario {args.scenario!r}; one of: {', '.join(names)}, report")
    spec = tomllib.loads((SCENARIOS / f"{args.scenario}.toml").read_text()) | {"name": args.scenario}
    if spec["workload"].startswith("kubernetes"):
        if args.url:
            raise SystemExit(f"{args.scenario} drives the cluster kubectl reaches: run it without --url")
        if spec["workload"] == "kubernetes":
            ensure_gnuplot()
        scenario = {"kubernetes": cluster.autoscale, "kubernetes-rollout": cluster.rollout,
                    "kubernetes-faults": cluster.faults}[spec["workload"]]
        return 0 if scenario(spec, args.quick, common.OUT) else 1
    ensure_siege()
    local = args.url is None
    if local and not args.no_build:
        build()
    if spec["workload"] == "scale-out":
        if not local:
            raise SystemExit("scale-out starts the fleet with one and two replicas: run it without --url")
        outcome, broker = scale_out(spec, lambda fleet: Load(LOCAL_GATEWAY), args.quick)
        target = f"local fleet ({Fleet.profile} build)"
        return 0 if write_results(args.scenario, spec, target, broker, *outcome) else 1
    fleet = None
    try:
        if local:
            fleet = Fleet(spec.get("fleet", {}).get("replicas"), spec.get("fleet", {}).get("env"))
            fleet.start()
        load = Load(args.url or LOCAL_GATEWAY)
        if spec["workload"] == "abuse":
            scenario = abuse.abuse
        else:
            scenario = {"rent": circuit_breaker if args.scenario == "circuit-breaker" else rolling_restart,
                        "cycles": baseline}[spec["workload"]]
        outcome = scenario(spec, load, fleet, args.quick)
    finally:
        if fleet:
            fleet.stop()
    target = args.url or f"local fleet ({Fleet.profile} build)"
    broker = fleet.broker if fleet else "remote"
    return 0 if write_results(args.scenario, spec, target, broker, *outcome) else 1


if __name__ == "__main__":
    sys.exit(main())
