"""The report's ceilings: the fleet's database work for rent → return cycles as bare SQL, run by
pgbench (prepared statements, one client a siege user) on copies of the tables, with the
statements the run itself captured (siege.statements):

- the ceiling: rental's and payment's own transactions of a cycle (the rent, the payment, the
  return), without the consumers and the relays;
- the fair ceiling: every statement the fleet runs for a cycle, every consumer's inbox row and
  effect and the outbox relays' passes included, weighted as the fleet's relays made them (events
  a pass), and the better of two shapes: consumers with a transaction an event, and consumers
  applying as many cycles' events in one transaction as the fleet's did.

What the fleet's code and processes cost on top of the database work they must do is the ratio
of the fleet's cycles to these. Each pgbench client rents its own book as its own customer, so
the ceilings are not bound by locks of the scripts' making.
"""

import re
import subprocess

from siege import common
from siege.common import say
from siege.statements import SERVICES, psql

# How many events a relay pass publishes when nothing measured says (neither pg_stat_statements
# nor the relay's outbox_pass_events).
RELAY_EVENTS_PER_PASS = 32


def script_statements(script):
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


def fair_statements(replay, per_pass_events=None, cycles=1):
    """What one fair cycle runs, [(who, statements, transactions)] (pgbench's own statement left
    out), with each relay's share of passes at `per_pass_events` {schema: events a pass}
    (RELAY_EVENTS_PER_PASS where it names none), the consumers applying `cycles` cycles' events
    in a transaction; and the totals."""
    rows = [(who, n / cycles, tx / cycles)
            for who, n, tx in script_statements(replay.cycle_script(cycles)) if who != "pgbench"]
    for schema, events in replay.outbox_events().items():
        per_pass = sum(n for _, n, _ in script_statements(replay.relay_script(schema)))
        passes = events / (per_pass_events or {}).get(schema, RELAY_EVENTS_PER_PASS)
        rows.append((f"{SERVICES[schema]}'s outbox relay", per_pass * passes, passes))
    return rows, sum(n for _, n, _ in rows), sum(tx for _, _, tx in rows)


def consumer_events_per_cycle(replay):
    """Events each consumer applies in one cycle, by service."""
    counts = {}
    for who, _, _, consumer in replay.units():
        if consumer:
            counts[who] = counts.get(who, 0) + 1
    return counts


def cycles_a_batch(replay, events_per_transaction):
    """How many cycles the consumers apply in one transaction so that each applies about as
    many events a transaction as the fleet's did ({service: events}): the median over consumers,
    1 to 16."""
    per_cycle = consumer_events_per_cycle(replay)
    ratios = sorted(events / per_cycle[who] for who, events in events_per_transaction.items()
                    if per_cycle.get(who))
    if not ratios:
        return 1
    return max(1, min(16, round(ratios[len(ratios) // 2])))


def parse_pgbench(out):
    """pgbench's report as {"tps", "latency_ms", "failed", "scripts": [{"tps", "count",
    "latency_ms"}] (one for each script, when there are several, in the order given)}."""
    def number(pattern, text):
        found = re.search(pattern, text, re.M)
        return found and float(found[1])

    sections = re.split(r"^SQL script \d+: .*$", out, flags=re.M)
    return {
        "tps": number(r"^tps = ([\d.]+)", sections[0]),
        "latency_ms": number(r"^latency average = ([\d.]+) ms", sections[0]),
        "failed": int(number(r"^number of failed transactions: (\d+)", sections[0]) or 0),
        "scripts": [{
            "tps": number(r"tps = ([\d.]+)\)", section),
            "count": int(number(r"- (\d+) transactions", section)),
            "latency_ms": number(r"- latency average = ([\d.]+) ms", section),
        } for section in sections[1:]],
    }


def run_pgbench(url, clients, seconds, scripts, variables=None):
    """pgbench (prepared statements, two threads) over `scripts` ([(path, weight)]), with
    `variables` set in every client; its figures (parse_pgbench)."""
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
    return parse_pgbench(done.stdout)


def ceiling(url, clients, seconds, replay):
    """Rent → return cycles per second as bare SQL, rental's and payment's own transactions, and
    ms a cycle; and their statements a cycle."""
    script = replay.cycle_script(services=("rental", "payment"), consumers=False)
    psql(url, replay.setup(url, clients))
    common.WORK.mkdir(parents=True, exist_ok=True)
    path = common.WORK / "ceiling.pgbench.sql"
    path.write_text(script)
    statements = sum(n for who, n, _ in script_statements(script) if who != "pgbench")
    say(f"pgbench -M prepared -c {clients} -T {seconds}: a rent and a return as bare SQL, rental's "
        f"and payment's own statements ({statements} a cycle)")
    try:
        out = run_pgbench(url, clients, seconds, [(path, 1)], replay.variables())
    finally:
        psql(url, replay.drop())
    return out["tps"], out["latency_ms"], statements


def fair(url, clients, seconds, replay, per_pass_events=None, cycles=1):
    """The fair ceiling: rent → return cycles per second with every statement the fleet runs for
    one, the outbox relays' passes beside them (weighted to a pass per `per_pass_events[schema]`
    events, what the fleet's relays published a pass in its cycles, else RELAY_EVENTS_PER_PASS),
    each pgbench transaction `cycles` cycles whose consumers apply their events together; ms a
    cycle, its share of relay passes included; what a cycle runs (fair_statements)."""
    events = replay.outbox_events()
    per_pass = {schema: (per_pass_events or {}).get(schema) or RELAY_EVENTS_PER_PASS
                for schema in events}
    psql(url, replay.setup(url, clients))
    common.WORK.mkdir(parents=True, exist_ok=True)
    cycle = common.WORK / "fair-cycle.pgbench.sql"
    cycle.write_text(replay.cycle_script(cycles))
    # pgbench weighs scripts with integers: a cycle 1,000, a relay pass 1,000 ÷ its events.
    scripts = [(cycle, 1000)]
    for schema, n in events.items():
        path = common.WORK / f"fair-relay-{schema}.pgbench.sql"
        path.write_text(replay.relay_script(schema))
        scripts.append((path, max(1, round(1000 * n / per_pass[schema]))))
    rows, total, transactions = fair_statements(replay, per_pass, cycles)
    say(f"pgbench -M prepared -c {clients} -T {seconds}: a rent and a return with every statement "
        f"the fleet runs for them ({total:.1f} a cycle, {cycles} cycle(s) a consumer transaction)")
    try:
        out = run_pgbench(url, clients, seconds, scripts, replay.variables())
    finally:
        psql(url, replay.drop())
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
