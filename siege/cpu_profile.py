"""CPU profiles of the loaded fleet: `siege/run report --profile-cpu`.

perf samples every CPU of the machine (`perf record -a -g`, frame pointers) while the report's
50-user rent → return cycles run through the gateway. The samples are split by process: each
fleet process by its pid file, PostgreSQL's backends, the broker's JVM, siege, the kernel's idle
loop and the rest. It writes under siege/results/profile/: one flame graph per process
(<name>.svg, drawn by inferno, installed with cargo when missing; build artefacts, not
committed) and profile.md, the machine's CPU by process and, for each fleet process, the
functions holding the most samples (self and inclusive), which is what a change quotes as the
line it removed.

The fleet runs a build of its own for this (scripts/dev.sh --profiling: the release profile with
symbols, line tables and frame pointers), so perf can walk every stack without DWARF unwinding.
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import time

from siege import common
from siege.common import say

INFERNO_VERSION = "0.12.3"
# Samples per second and CPU: enough for a 30 s phase to give every process thousands, little
# enough that perf itself stays under a few per cent of a core.
FREQUENCY = 199
TOP = 15


def ensure_tools():
    if shutil.which("perf") is None:
        raise SystemExit("--profile-cpu needs perf (Debian's linux-perf package)")
    inferno = shutil.which("inferno-flamegraph")
    if inferno is None:
        say(f"cargo install inferno {INFERNO_VERSION} (flame graphs)")
        subprocess.run(["cargo", "install", "inferno", "--version", INFERNO_VERSION, "--locked"],
                       check=True)


class Profiler:
    """perf over the whole machine between start() and stop()."""

    def __init__(self, fleet, kafka_pid):
        self.fleet, self.kafka_pid = fleet, kafka_pid
        self.dir = common.OUT / "profile"
        self.work = common.WORK
        self.data = self.work / "perf.data"
        self.process = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        # Pids now: a process that restarts during the phase would be "other".
        self.pids = {self.fleet.pid(name): name for name, _ in self.fleet.instances()}
        if self.kafka_pid:
            self.pids[self.kafka_pid] = "kafka broker (JVM)"
        self.process = subprocess.Popen(
            ["perf", "record", "-a", "-g", "-F", str(FREQUENCY), "-o", str(self.data)],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "perf-record.log", "w"))
        time.sleep(1)
        if self.process.poll() is not None:
            raise SystemExit(f"perf record failed: see {self.work / 'perf-record.log'} "
                             "(kernel.perf_event_paranoid may forbid system-wide sampling)")
        self.started = time.monotonic()

    def stop(self):
        seconds = time.monotonic() - self.started
        self.process.send_signal(signal.SIGINT)
        self.process.wait(120)
        say("perf script: folding the samples by process")
        script = subprocess.Popen(["perf", "script", "-i", str(self.data), "-F", "comm,pid,ip,sym"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  errors="replace")
        folded = fold(script.stdout, self.group)
        script.wait()
        return self.write(folded, seconds)

    def group(self, comm, pid):
        if pid in self.pids:
            return self.pids[pid]
        if pid == 0:
            return "idle"
        if comm.startswith("postgres"):
            return "postgresql"
        if comm == "siege":
            return "siege"
        return "other"

    def write(self, folded, seconds):
        totals = {group: sum(stacks.values()) for group, stacks in folded.items()}
        everything = sum(totals.values()) or 1
        for old in self.dir.glob("*.svg"):
            old.unlink()
        lines = [
            "# CPU profile of the loaded fleet",
            "",
            f"`siege/run report --profile-cpu`: perf sampling every CPU at {FREQUENCY} Hz for "
            f"{seconds:.0f} s while 50 siege users ran rent → return cycles through the gateway "
            f"({os.cpu_count()} cores; profiling build: release with symbols and frame pointers). "
            "Flame graphs: one SVG per process, written beside this file by the run (build "
            "artefacts: the repository keeps this file only).",
            "",
            "| process | share of the machine's CPU time | samples |",
            "|---|---|---|",
        ]
        for group, total in sorted(totals.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {group} | {100 * total / everything:.1f} % | {total:,} |")
        fleet_kinds = collections.Counter()
        for group, stacks in sorted(folded.items(), key=lambda kv: -totals[kv[0]]):
            if group in ("idle", "other"):
                continue
            svg = self.dir / f"{slug(group)}.svg"
            with open(svg, "w") as out:
                subprocess.run(["inferno-flamegraph", "--title", f"{group}: CPU under load",
                                "--minwidth", "0.2"],
                               input="".join(f"{s} {n}\n" for s, n in stacks.items()),
                               text=True, stdout=out, check=True)
            if group in ("postgresql", "siege", "kafka broker (JVM)"):
                continue
            own, inclusive, kinds = hot(stacks)
            share = lambda n: f"{100 * n / totals[group]:.1f} %"  # noqa: E731
            fleet_kinds.update(kinds)
            lines += ["", f"## {group}", "",
                      f"{totals[group]:,} samples, {100 * totals[group] / everything:.1f} % of the "
                      f"machine; flame graph: `{svg.name}`", "",
                      "| what | share of the process | | our function (inclusive) | share |",
                      "|---|---|---|---|---|"]
            rows = max(len(kinds), len(inclusive))
            kinds, inclusive = kinds.most_common(), inclusive + [("", 0)] * rows
            kinds += [("", 0)] * rows
            for (kind, k_n), (fn, f_n) in list(zip(kinds, inclusive))[:rows]:
                lines.append(f"| {kind} | {share(k_n) if kind else ''} | | "
                             f"{'`' + fn + '`' if fn else ''} | {share(f_n) if fn else ''} |")
            lines += ["", "| self | function |", "|---|---|"]
            lines += [f"| {share(n)} | `{fn}` |" for fn, n in own]
        fleet = sum(fleet_kinds.values()) or 1
        summary = ["", "The fleet's processes together, by what they were doing "
                   f"({100 * fleet / everything:.1f} % of the machine):", "",
                   "| what | share of the fleet's CPU | of the machine's |", "|---|---|---|"]
        summary += [f"| {kind} | {100 * n / fleet:.1f} % | {100 * n / everything:.1f} % |"
                    for kind, n in fleet_kinds.most_common()]
        at = lines.index(next(line for line in lines if line.startswith("## ")))
        lines[at - 1:at - 1] = summary
        (self.dir / "profile.md").write_text("\n".join(lines) + "\n")
        (self.work / "profile.folded").write_text("".join(
            f"{group};{stack} {n}\n" for group, stacks in folded.items() for stack, n in stacks.items()))
        self.data.unlink(missing_ok=True)
        say(f"CPU profile: {self.dir / 'profile.md'} and one flame graph per process")
        return {group: round(100 * total / everything, 1) for group, total in totals.items()}


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def fold(lines, group):
    """perf script's samples as folded stacks per group: {group: {"a;b;c": samples}}."""
    folded = collections.defaultdict(collections.Counter)
    header, frames = None, []

    def flush():
        if header:
            stack = ";".join(reversed(frames)) or "[no stack]"
            folded[group(*header)][f"{header[0]};{stack}"] += 1

    for line in lines:
        if not line.strip():
            flush()
            header, frames = None, []
        elif not line[0].isspace():
            # "comm pid" where comm may hold spaces: the pid is the last field.
            comm, _, pid = line.rstrip().rpartition(" ")
            header = (comm.strip(), int(pid) if pid.isdigit() else -1)
        else:
            frames.append(symbol(line))
    flush()
    return folded


def symbol(line):
    # "\t    55d0c8a1b2c3 tokio::runtime::task::raw::poll+0x4a" → the name without its offset;
    # perf prints "[unknown]" where a frame has no symbol.
    parts = line.strip().split(None, 1)
    name = parts[1] if len(parts) > 1 else parts[0]
    name = re.sub(r"\+0x[0-9a-f]+$", "", name)
    # Rust's legacy mangling leaves a hash suffix; it splits one function into many.
    return re.sub(r"::h[0-9a-f]{16}$", "", name).replace(";", ":")


# What a sample was doing, by the first of these found anywhere in its stack (so a socket write
# that sqlx asked for counts as sqlx, a log line's formatting as logging, and so on).
CATEGORIES = [
    ("logging", r"tracing_subscriber::fmt|<tracing_subscriber::fmt"),
    ("trace export", r"opentelemetry"),
    ("metrics", r"prometheus::|metrics::"),
    ("tokens (JWT, signatures)", r"jsonwebtoken|aws_lc|ring::"),
    ("password hashing", r"argon2"),
    ("JSON", r"serde_json|serde_path_to_error"),
    ("PostgreSQL client (sqlx)", r"sqlx_|sqlx::"),
    ("Kafka client (librdkafka)", r"rd_kafka|rdkafka|^rd_|;rd_"),
    ("HTTP client (reqwest, hyper client)", r"reqwest::|hyper_util::client|hyper::client"),
    ("HTTP server (hyper, axum, tower)", r"hyper::|axum::|tower::|tower_http::|hyper_util::server"),
    ("tokio runtime (scheduler, timers, I/O driver)", r"tokio::"),
]
CATEGORY_PATTERNS = [(name, re.compile(pattern)) for name, pattern in CATEGORIES]
# Our own crates, whose functions get an inclusive table of their own.
OURS = re.compile(r"^(<)?(fleet_[a-z]+|rental|payment|book_management|user|view|points|gateway|"
                  r"shared_events)::")


def category(stack):
    for name, pattern in CATEGORY_PATTERNS:
        if pattern.search(stack):
            return name
    return "other (kernel, allocator, threads)"


def hot(stacks):
    """The TOP functions by self samples, our own functions by inclusive samples (each counted
    once a stack), and the samples by category."""
    own, inclusive, kinds = collections.Counter(), collections.Counter(), collections.Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")[1:]
        if not frames:
            continue
        own[frames[-1]] += n
        kinds[category(";".join(frames))] += n
        for frame in set(frames):
            if OURS.match(frame):
                inclusive[frame] += n
    return own.most_common(TOP), inclusive.most_common(TOP), kinds
