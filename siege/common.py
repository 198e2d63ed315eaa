"""What every part of the runner shares: where things are, how it reports progress, waiting,
installing a Debian package, and the arithmetic of answers (percentiles, statuses, per second).

`OUT` is where this run writes its figures: `RESULTS`, but for a `--quick` run, whose figures
mean little, a folder that is not committed (the test command runs one). The runner sets it once
(`use_quick_results`); every module reads it as `common.OUT`, at the time it writes.
"""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENARIOS = HERE / "scenarios"
RESULTS = HERE / "results"
# Scratch files of a run (siege's URL files, gnuplot's data, pgbench scripts): never committed.
WORK = RESULTS / "work"
OUT = RESULTS
LOGS = REPO / "target" / "dev-logs"


def use_quick_results():
    """A --quick run writes its figures under results/work/quick/, not over the committed ones."""
    global OUT
    OUT = WORK / "quick"


def say(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(what, check, timeout=120, every=0.5):
    """check() until it returns something true, which is returned; SystemExit after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout}s")
        time.sleep(every)


def apt_install(package):
    """Installs a Debian package; a fresh machine may have no package lists yet."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    apt = sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q"]
    if subprocess.run(apt + ["install", package], stdout=subprocess.DEVNULL).returncode:
        subprocess.run(apt + ["update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(apt + ["install", package], check=True, stdout=subprocess.DEVNULL)


def percentile(values, share):
    """The nearest-rank percentile (`share` 0.5 for p50), or None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def statuses(answers):
    """{"201": n, ...} of (seconds, status, ms) answers, sorted by status."""
    counts = {}
    for _, status, _ in answers:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return dict(sorted(counts.items()))


def per_second(answers, offset=0.0):
    """Answers per second by status class, and p50/p99 latency, for the plot."""
    seconds = {}
    for at, status, millis in answers:
        bucket = seconds.setdefault(int(at + offset), {"ok": 0, "failed": 0, "latencies": []})
        bucket["ok" if status < 400 else "failed"] += 1
        bucket["latencies"].append(millis)
    return [{"second": s, "ok": b["ok"], "failed": b["failed"],
             "p50_ms": percentile(b["latencies"], 0.5), "p99_ms": percentile(b["latencies"], 0.99)}
            for s, b in sorted(seconds.items())]


def field(line, name):
    """A field of a JSON log line, flattened (the services' format) or under "fields"."""
    return line.get(name, line.get("fields", {}).get(name))
