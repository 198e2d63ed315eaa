"""The local fleet, as `scripts/dev.sh` runs it: started (fresh database and broker, the limits a
single load client would hit raised), its processes' ports, readiness, metrics, pids, memory and
logs, a process restarted, and the fleet stopped. `build` has dev.sh build the binaries: dev.sh
alone decides where they go.
"""

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from siege.common import LOGS, REPO, say, wait_for

LOCAL_GATEWAY = "http://127.0.0.1:8080"
# The broker a result was measured on, as fleet.env's FLEET_KAFKA names it ("remote": --url).
BROKERS = {
    "real": "Apache Kafka, one node started by dev.sh",
    "mock": "librdkafka's mock broker (dev-broker)",
    "external": "the Kafka at KAFKA_BROKERS",
    "remote": "whatever the fleet at --url runs on",
}
# Where dev.sh runs each service's first replica; replica N is 100 * (N - 1) above.
PORTS = {"gateway": 8080, "rental": 8081, "payment": 8082, "book-management": 8083, "user": 8084, "view": 8085,
         "points": 8086}
# A process's operations port (/livez, /readyz and /metrics, which the API port does not serve) is
# its API port + OPS_OFFSET, as dev.sh starts it.
OPS_OFFSET = 1000


def manager():
    """The manager to sign in as: FLEET_MANAGER_EMAIL/PASSWORD, else the one dev.sh made."""
    made = REPO / "target" / "dev-secrets" / "manager.env"
    found = dict(line.split("=", 1) for line in made.read_text().splitlines() if "=" in line) \
        if made.exists() else {}
    email = os.environ.get("FLEET_MANAGER_EMAIL", found.get("MANAGER_EMAIL", "manager@fleet.example"))
    password = os.environ.get("FLEET_MANAGER_PASSWORD", found.get("MANAGER_PASSWORD"))
    if not password:
        raise SystemExit(f"no manager password: set FLEET_MANAGER_PASSWORD, or start the fleet with "
                         f"scripts/dev.sh, which writes {made}")
    return email, password


def metrics(port):
    """The Prometheus exposition of the process whose API port is `port`, from its operations
    port, or "" while it does not answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port + OPS_OFFSET, timeout=5)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    except OSError:
        return ""
    finally:
        connection.close()


def sample(exposition, prefix):
    """The sum of every series starting with `prefix`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
               if line.startswith(prefix))


def ready(port):
    """Does the process whose API port is `port` answer 200 on /readyz, on its operations port
    (where Kubernetes probes it)?"""
    connection = http.client.HTTPConnection("127.0.0.1", port + OPS_OFFSET, timeout=2)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def rss_of(pid):
    """A process's resident memory in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Fleet:
    """The whole fleet on this machine, started by scripts/dev.sh in release mode."""

    profile = "release"
    kafka = "real"

    def __init__(self, replicas=None, env=None, kafka=None):
        self.replicas = {name: 1 for name in PORTS} | (replicas or {})
        self.env = env or {}
        self.kafka = kafka or Fleet.kafka
        self.process = None
        self.settings = {}

    def instances(self, service=None):
        """(name, port) of every running process of `service`, or of the whole fleet."""
        return [(name if n == 1 else f"{name}-{n}", port + 100 * (n - 1))
                for name, port in PORTS.items() if service in (None, name)
                for n in range(1, self.replicas[name] + 1)]

    def start(self):
        env = os.environ | {
            "FLEET_KAFKA": self.kafka,
            "FLEET_DB_NAME": "fleet_siege",
            "FLEET_REPLICAS": " ".join(f"{k}={v}" for k, v in self.replicas.items() if v > 1),
            # One load client at a local address: the per-client budget must not be the limit.
            "RATE_LIMIT_PER_SECOND": "1000000", "RATE_LIMIT_BURST": "1000000",
            "SIGN_IN_RATE_LIMIT_PER_MINUTE": "1000000", "SIGN_IN_RATE_LIMIT_BURST": "1000000",
            # One customer rents every book of the load: the per-customer limit must not be the
            # limit either.
            "MAX_ACTIVE_RENTALS_PER_CUSTOMER": "1000000",
            "RUST_LOG": "info",
        } | ({
            # A debug build's payment answers several times slower than a release build's, and
            # a loaded one can pass the 610 ms timeout: a run that tries the runner must not fail
            # on that (a scenario's own setting still wins).
            "PAYMENT_TIMEOUT_MS": "2000",
        } if self.profile == "debug" else {}) | self.env
        if self.kafka == "mock":
            # The mock is asked for by name: a Kafka inherited from the environment would take
            # its place in dev.sh.
            env.pop("KAFKA_BROKERS", None)
        say(f"starting the fleet ({env['FLEET_REPLICAS'] or 'one replica each'}, broker {self.kafka}"
            + "".join(f", {k}={v}" for k, v in self.env.items()) + ")")
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / "dev.sh.log", "w")
        self.process = subprocess.Popen(
            [str(REPO / "scripts" / "dev.sh"), "--no-build", "--fresh"]
            + {"release": ["--release"], "profiling": ["--profiling"]}.get(self.profile, []),
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        def up():
            if self.process.poll() is not None:
                raise SystemExit(f"dev.sh exited: see {self.log.name}")
            return (LOGS / "fleet.env").exists() and all(ready(p) for _, p in self.instances())
        # dev.sh gives up by itself when the broker or a service does not start (a JVM on two busy
        # cores takes a while): this only guards against a hang.
        wait_for("the fleet to be ready", up, timeout=600)
        self.settings = dict(line.split("=", 1) for line in
                             (LOGS / "fleet.env").read_text().splitlines() if "=" in line)
        say(f"the fleet is up (broker: {self.broker})")

    @property
    def broker(self):
        """real, mock or external, as dev.sh wrote it into fleet.env."""
        return self.settings.get("FLEET_KAFKA", "unknown")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                # Services drain, then the broker and the database stop: a JVM left behind by a
                # SIGKILL here would hold the next fleet's broker data.
                self.process.wait(180)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def pid(self, instance):
        # dev.sh rewrites the file when it starts the process again: read until it is whole.
        for _ in range(1000):
            text = (LOGS / f"{instance}.pid").read_text().strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.001)
        raise SystemExit(f"no pid in {LOGS / (instance + '.pid')}")

    def rss_mb(self, instance):
        return rss_of(self.pid(instance))

    def kafka_pid(self):
        """The pid of the Kafka broker dev.sh started (its kafka.pid), or None."""
        path = LOGS / "kafka.pid"
        text = path.read_text().strip() if path.exists() else ""
        return int(text) if text.isdigit() else None

    def restart(self, instance):
        """SIGTERM, then wait for dev.sh to start it again and for it to be ready; returns the
        seconds from the new process's start to ready."""
        port = dict(self.instances())[instance]
        old = self.pid(instance)
        os.kill(old, signal.SIGTERM)
        wait_for(f"{instance} to start again", lambda: self.pid(instance) != old, timeout=60,
                 every=0.002)
        started = time.monotonic()
        wait_for(f"{instance} to be ready", lambda: ready(port), timeout=60, every=0.005)
        return time.monotonic() - started

    def log_offset(self, instance):
        return (LOGS / f"{instance}.log").stat().st_size

    def log_lines(self, instance, since):
        """JSON log lines of `instance` written after byte offset `since`."""
        with open(LOGS / f"{instance}.log", "rb") as log:
            log.seek(since)
            for raw in log:
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def build():
    """The binaries of `Fleet.profile`, built by dev.sh, which alone decides where they go (its
    build directory)."""
    command = [str(REPO / "scripts" / "dev.sh"), "--build-only"]
    command += {"release": ["--release"], "profiling": ["--profiling"]}.get(Fleet.profile, [])
    say("scripts/dev.sh " + " ".join(command[1:]))
    subprocess.run(command, cwd=REPO, check=True)

