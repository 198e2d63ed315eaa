"""The fleet on a Kubernetes cluster under load, for the scenarios that drive the cluster kubectl
reaches (siege/run hpa, cluster-rollout, cluster-faults): the siege pod of kubernetes/siege
running rent → return cycles through the gateway Service (siege.cluster_load), and what is
checked around it.

- hpa: the autoscalers sampled while the load runs, until gateway, rental and payment have grown
  and, after it, shrunk back (siege.hpa judges the timeline and draws it).
- cluster-rollout: `kubectl rollout restart` of gateway, rental and payment while the load runs;
  every request must succeed, in each of `runs` runs in a row.
- cluster-faults: a rental pod, the Kafka pod and the PostgreSQL pod deleted in turn while the
  load runs; nothing may be lost or applied twice (the chaos matrix's invariants, read from the
  cluster's PostgreSQL), and each run gives the time until renting succeeded again.
"""

import concurrent.futures
import json
import shutil
import subprocess
import time

from siege import common, hpa
from siege.common import REPO

# What a successful request of the load (siege.cluster_load) answers; anything else is a failed request.
SUCCESS = {"book 201", "register 201", "rent 201", "return 200"}


def say(message):
    print(message, flush=True)


class Cluster:
    """kubectl on the cluster it reaches, in the fleet's namespace."""

    def __init__(self, namespace):
        self.kubectl = shutil.which("kubectl")
        self.namespace = namespace
        if self.kubectl is None or subprocess.run([self.kubectl, "cluster-info"],
                                                  capture_output=True).returncode:
            raise SystemExit("no Kubernetes cluster is reachable with kubectl; nothing was run")

    def run(self, *args, check=True, namespaced=True, **kwargs):
        prefix = [self.kubectl, "-n", self.namespace] if namespaced else [self.kubectl]
        done = subprocess.run(prefix + list(args), text=True, capture_output=True, **kwargs)
        if check and done.returncode:
            raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json"))

    def context(self):
        return self.run("config", "current-context", check=False, namespaced=False).strip()

    def metrics_api_available(self):
        return self.run("get", "apiservice", "v1beta1.metrics.k8s.io", "-o",
                        "jsonpath={.status.conditions[?(@.type=='Available')].status}",
                        check=False, namespaced=False).strip() == "True"

    def sql(self, query):
        """One value from the fleet's database, as its superuser, in the PostgreSQL pod."""
        out = self.run("exec", "postgres-0", "-c", "postgres", "--", "psql", "-U", "postgres",
                       "-d", "fleet", "-v", "ON_ERROR_STOP=1", "-Atc", query, check=False)
        return out.strip()


class SiegePod:
    """The siege pod as kubernetes/siege renders it, with this run's load: siege.cluster_load
    prints a JSON progress line every `progress_every` seconds and a summary at the end."""

    def __init__(self, cluster, concurrency, seconds, progress_every=10):
        self.cluster, self.seconds = cluster, seconds
        rendered = cluster.run("kustomize", str(REPO / "kubernetes" / "siege"), namespaced=False)
        # A List from some kubectl versions, one object after another from others.
        out = cluster.run("create", "--dry-run=client", "-o", "json", "-f", "-", input=rendered,
                          namespaced=False)
        items, decoder, at = [], json.JSONDecoder(), 0
        while at < len(out.strip()):
            value, at = decoder.raw_decode(out, at)
            items.extend(value.get("items", [value]))
            while at < len(out) and out[at].isspace():
                at += 1
        pods = [item for item in items if item["kind"] == "Pod"]
        if len(pods) != 1:
            raise SystemExit(f"kubernetes/siege renders {len(pods)} pods, expected one")
        self.manifests = {"apiVersion": "v1", "kind": "List", "items": items}
        self.pod = pods[0]
        self.name = self.pod["metadata"]["name"]
        env = {"LOAD_CONCURRENCY": str(concurrency), "LOAD_SECONDS": str(seconds),
               "LOAD_PROGRESS_EVERY": str(progress_every)}
        variables = self.pod["spec"]["containers"][0]["env"]
        for variable in variables:
            if variable["name"] in env:
                variable["value"] = env.pop(variable["name"])
        variables.extend({"name": name, "value": value} for name, value in env.items())

    def start(self):
        self.cluster.run("delete", "pod", self.name, "--ignore-not-found", "--wait=true")
        self.cluster.run("apply", "-f", "-", input=json.dumps(self.manifests))
        self.cluster.run("wait", "--for=condition=Ready", f"pod/{self.name}", "--timeout=5m")

    def phase(self):
        return self.cluster.run("get", "pod", self.name, "-o", "jsonpath={.status.phase}",
                                check=False).strip()

    def lines(self, kind):
        out = []
        for line in self.cluster.run("logs", self.name, check=False).splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if kind in record:
                    out.append(record[kind])
        return out

    def wait_cycling(self, timeout=300):
        """Until the workers have finished a rent → return cycle (set-up done, books known)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress = self.lines("progress")
            if progress and progress[-1]["cycles"] > 0:
                return
            if self.phase() in ("Succeeded", "Failed"):
                break
            time.sleep(1)
        raise SystemExit(f"the siege pod completed no cycle: {self.cluster.run('logs', self.name, check=False)[-800:]}")

    def wait_done(self):
        deadline = time.monotonic() + self.seconds + 120
        while self.phase() not in ("Succeeded", "Failed"):
            if time.monotonic() > deadline:
                raise SystemExit("the siege pod did not end")
            time.sleep(2)
        summary = self.lines("summary")
        return summary[-1] if summary else {}

    def delete(self):
        self.cluster.run("delete", "pod", self.name, "--ignore-not-found", "--wait=false",
                         check=False)


def autoscale(spec, quick, out):
    """The hpa scenario: the siege pod's rent → return load (kubernetes/siege) in the cluster
    kubectl reaches, the autoscalers sampled every few seconds, until every one that must scale
    has wanted more replicas than its minimum (then `hold` seconds more, to show it) or the load
    ends. Writes results/hpa.json (the timeline, the verdict, the load's figures) and hpa.png."""
    k8s = Cluster(spec["namespace"])
    if not k8s.metrics_api_available():
        raise SystemExit("hpa: the metrics API is not available: install the metrics server "
                         "(on kind: scripts/kind.sh metrics-server; AKS has it)")
    seconds = spec["quick_seconds"] if quick else spec["seconds"]
    siege = SiegePod(k8s, spec["concurrency"], seconds)
    siege.start()
    k = k8s.run
    common.say(f"the siege pod runs: {spec['concurrency']} rent → return workers for up to {seconds} s; "
        f"sampling the autoscalers every {spec['sample_every']} s")

    started, timeline, grown_at, phase = time.monotonic(), [], None, "Running"
    while True:
        t = time.monotonic() - started
        point = hpa.sample(json.loads(k("get", "hpa", "-o", "json")), t)
        timeline.append(point)
        common.say("  " + "  ".join(f"{name} {h['current']}→{h['desired']} ({h['cpu_percent']} %)"
                             for name, h in sorted(point["hpa"].items()) if name in spec["must_scale"]))
        if grown_at is None and hpa.all_grew(timeline, spec["must_scale"]):
            grown_at = t
            common.say(f"every autoscaler of {', '.join(spec['must_scale'])} has grown; {spec['hold']} s more")
        phase = siege.phase()
        if phase in ("Succeeded", "Failed") or (grown_at is not None and t - grown_at >= spec["hold"]) \
                or t > seconds + 60:
            break
        time.sleep(spec["sample_every"])
    load = (siege.lines("summary") or siege.lines("progress") or [{}])[-1]
    logs = k("logs", siege.name, check=False)
    # The replicas the autoscalers added must be Ready and answer requests, while the load runs.
    serving = pods_taking_requests(k8s, spec["must_scale"]) if phase == "Running" else {}
    siege.delete()
    load_stopped = round(time.monotonic() - started, 1)
    if spec.get("scale_in_seconds"):
        common.say(f"the load stopped; the autoscalers have {spec['scale_in_seconds']} s to come back to their minima")
        deadline = time.monotonic() + spec["scale_in_seconds"]
        while time.monotonic() < deadline:
            time.sleep(spec["sample_every"])
            point = hpa.sample(json.loads(k("get", "hpa", "-o", "json")), time.monotonic() - started)
            timeline.append(point)
            if all(point["hpa"].get(n, {}).get("current") == point["hpa"].get(n, {}).get("min") ==
                   point["hpa"].get(n, {}).get("desired") for n in spec["must_scale"]):
                break
    judged = hpa.verdict(timeline, spec["must_scale"], load_stopped if spec.get("scale_in_seconds") else None)
    failures = list(judged["broken"])
    for name, pods in serving.items():
        minimum = judged["autoscalers"].get(name, {}).get("min", 0)
        if pods["taking_requests"] is not None and pods["ready"] > minimum \
                and pods["taking_requests"] <= minimum:
            failures.append(f"{name}: {pods['ready']} pods Ready but only {pods['taking_requests']} answered requests")
    if phase == "Failed":
        failures.append("the load pod failed: " + logs[-500:])
    if not load.get("cycles"):
        failures.append("the load completed no rent → return cycle")
    out.mkdir(parents=True, exist_ok=True)
    context = k8s.context()
    png = hpa.plot(timeline, out / "hpa.png", f"hpa: {spec['description']}", common.WORK,
                   load_stopped if spec.get("scale_in_seconds") else None)
    result = {
        "scenario": "hpa",
        "description": spec["description"],
        "target": f"kubectl context {context or 'unknown'}, namespace {k8s.namespace}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load": load,
        "load_stopped_s": load_stopped,
        "pods_taking_requests": serving,
        "verdict": judged,
        "timeline": timeline,
        "promise_kept": not failures,
        "broken": failures,
    }
    (out / "hpa.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nhpa: {spec['description']}")
    print(f"  {result['target']}; load: {load.get('cycles', 0)} cycles, {load.get('cycles_per_s', 0)}/s, "
          f"answers {load.get('answers', {})}")
    for name, v in sorted(judged["autoscalers"].items()):
        grew = f"above its minimum from {v['first_above_min_s']} s" if v["first_above_min_s"] is not None \
            else "never above its minimum"
        back = f"; back at its minimum at {v['back_to_min_s']} s" if v.get("back_to_min_s") else ""
        print(f"  {name:16} min {v['min']}, peak desired {v['peak_desired']}, peak current {v['peak_current']}, "
              f"peak CPU {v['peak_cpu_percent']} %: {grew}{back}")
    for name, pods in sorted(serving.items()):
        print(f"  {name:16} {pods['ready']} pods Ready, {pods['taking_requests']} answering requests")
    print(f"  results: {out / 'hpa.json'}" + (f", {png}" if png else " (no plot: gnuplot missing)"))
    print("  PROMISE BROKEN:\n    " + "\n    ".join(failures) if failures else "  promise kept")
    return not failures


def failed_answers(load):
    return {k: v for k, v in load.get("answers", {}).items() if k not in SUCCESS}


def rollout(spec, quick, out):
    """cluster-rollout: `runs` rolling restarts of `deployments` under load, each request of
    every run answered with success."""
    cluster = Cluster(spec["namespace"])
    runs = 1 if quick else spec["runs"]
    results = []
    for n in range(1, runs + 1):
        pod = SiegePod(cluster, spec["concurrency"], spec["seconds"], progress_every=2)
        pod.start()
        pod.wait_cycling()
        started = time.time()
        for name in spec["deployments"]:
            cluster.run("rollout", "restart", f"deployment/{name}")
        for name in spec["deployments"]:
            cluster.run("rollout", "status", f"deployment/{name}", "--timeout=5m")
        rolled = time.time() - started
        load = pod.wait_done()
        progress = pod.lines("progress")
        load_ended = progress[-1]["at"] if progress else started
        pod.delete()
        failed = failed_answers(load)
        broken = []
        if failed:
            broken.append(f"failed requests: {failed}")
        if started + rolled > load_ended:
            broken.append("the rollout outlasted the load: raise `seconds`")
        if not load.get("cycles"):
            broken.append("no rent → return cycle completed")
        results.append({"run": n, "rollout_seconds": round(rolled, 1), "load": load,
                        "failed": failed, "broken": broken})
        say(f"run {n}: {', '.join(spec['deployments'])} rolled in {rolled:.0f} s; "
            f"{load.get('cycles', 0)} cycles, answers {load.get('answers', {})}"
            + (f"; BROKEN: {'; '.join(broken)}" if broken else "; every request succeeded"))
    return write(out, "cluster-rollout", spec, cluster, {"runs": results},
                 [f"run {r['run']}: {b}" for r in results for b in r["broken"]])


# The chaos matrix's invariants (gateway/tests/api/chaos.rs), each a count that must reach 0.
DISAGREEMENTS = REPO / "services/rental/tests/rentals-and-payments-disagree.sql"
DELIVERIES = {
    "rental.outbox": ["book.inbox", "payment.inbox", "users.inbox", "view.inbox", "points.inbox"],
    "book.outbox": ["rental.inbox", "view.inbox"],
    "payment.outbox": ["view.inbox"],
    "users.outbox": ["view.inbox"],
}
INVARIANTS = {
    # rental's own statement of it, one line a disagreement; counted here.
    "rentals and payments disagree": "SELECT count(*) FROM (" + DISAGREEMENTS.read_text()
    .strip().rstrip(";") + ") AS disagreements",
    **{f"events of {outbox} missing in {inbox}":
       f"SELECT count(*) FROM {outbox} o WHERE NOT EXISTS (SELECT 1 FROM {inbox} i WHERE i.event_id = o.event_id)"
       for outbox, inboxes in DELIVERIES.items() for inbox in inboxes},
    "books' rent counts minus BookRented events": """
        SELECT abs((SELECT coalesce(sum(times_rented), 0) FROM book.books)
                 - (SELECT count(*) FROM rental.outbox WHERE payload::jsonb->>'type' = 'BookRented'))""",
    "customers' active rentals minus rentals RENTED": """
        SELECT abs((SELECT coalesce(sum(active_rentals), 0) FROM users.accounts)
                 - (SELECT count(*) FROM rental.rentals WHERE status = 'RENTED'))""",
    "board rows that differ from rental and payment": """
        SELECT count(*) FROM rental.rentals r FULL JOIN view.rentals v ON v.id = r.id
        LEFT JOIN payment.payments p ON p.rental_id = r.id
        WHERE (r.status IN ('RENTED', 'RETURNED', 'EXPIRED', 'CANCELLED') OR v.id IS NOT NULL)
          AND (CASE WHEN r.status IN ('RENTED', 'RETURNED', 'EXPIRED', 'CANCELLED') THEN r.status END
                 IS DISTINCT FROM v.status OR p.status IS DISTINCT FROM v.payment_status)""",
}


def invariants(cluster, wait):
    """Each invariant's count once every one is 0, or as they stand after `wait` seconds (events
    and the reconciler settle things after a fault)."""
    deadline = time.monotonic() + wait
    while True:
        counts = {name: cluster.sql(query) for name, query in INVARIANTS.items()}
        if all(value == "0" for value in counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(3)


def recovery(progress, fault_at):
    """From the load's progress lines (one a second): when renting stopped after the fault, and
    how long after the fault it succeeded again (None: it never stopped)."""
    ticks = [(p["at"], p["answers"].get("rent 201", 0)) for p in progress]
    stalled = None
    for (_, before), (at, now) in zip(ticks, ticks[1:]):
        if at < fault_at:
            continue
        if now == before and stalled is None:
            stalled = at
        elif now > before and stalled is not None:
            return {"stalled_after_s": round(stalled - fault_at, 1),
                    "renting_again_after_s": round(at - fault_at, 1)}
    if stalled is None:
        return {"stalled_after_s": None, "renting_again_after_s": None}
    return {"stalled_after_s": round(stalled - fault_at, 1), "renting_again_after_s": "never"}


def faults(spec, quick, out):
    """cluster-faults: each of `targets` deleted in turn while the load runs."""
    cluster = Cluster(spec["namespace"])
    results = []
    for target in spec["targets"][:1] if quick else spec["targets"]:
        pod = SiegePod(cluster, spec["concurrency"], spec["seconds"], progress_every=1)
        pod.start()
        pod.wait_cycling()
        time.sleep(spec["fault_after"])
        victim = target
        if target.startswith("app.kubernetes.io/name="):
            victim = cluster.run("get", "pods", "-l", target, "-o", "jsonpath={.items[0].metadata.name}").strip()
        fault_at = time.time()
        cluster.run("delete", "pod", victim, "--wait=false")
        say(f"deleted pod {victim} under load")
        load = pod.wait_done()
        progress = pod.lines("progress")
        pod.delete()
        # The replacement is up before the data is judged.
        selector = target if target.startswith("app.") else None
        if selector:
            cluster.run("wait", "--for=condition=Ready", "pod", "-l", selector, "--timeout=5m")
        else:
            cluster.run("wait", "--for=condition=Ready", f"pod/{victim}", "--timeout=5m")
        counts = invariants(cluster, spec["settle_seconds"])
        broken = [f"{name}: {value}" for name, value in counts.items() if value != "0"]
        back = recovery(progress, fault_at)
        if back["renting_again_after_s"] == "never":
            broken.append("renting did not succeed again before the load ended")
        results.append({"deleted": victim, "recovery": back, "load": load, "invariants": counts,
                        "broken": broken})
        say(f"{victim}: renting stalled after {back['stalled_after_s']} s, succeeded again after "
            f"{back['renting_again_after_s']} s; answers {load.get('answers', {})}; "
            + ("invariants hold" if not broken else f"BROKEN: {'; '.join(broken)}"))
    return write(out, "cluster-faults", spec, cluster, {"faults": results},
                 [f"{r['deleted']}: {b}" for r in results for b in r["broken"]])


def write(out, scenario, spec, cluster, figures, broken):
    out.mkdir(parents=True, exist_ok=True)
    result = {"scenario": scenario, "description": spec["description"],
              "target": f"kubectl context {cluster.context() or 'unknown'}, namespace {cluster.namespace}",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures,
              "promise_kept": not broken, "broken": broken}
    (out / f"{scenario}.json").write_text(json.dumps(result, indent=1) + "\n")
    say(f"\n{scenario}: {'promise kept' if not broken else 'BROKEN: ' + '; '.join(broken)} "
        f"({out / (scenario + '.json')})")
    return not broken


def requests_served(cluster, pod):
    """The requests a pod has answered (http_requests_total on its operations port, through the
    API server's proxy), or None where that cannot be read (a NetworkPolicy that admits only
    Prometheus to the port, on a cluster that enforces it)."""
    try:
        raw = cluster.run("get", "--raw",
                          f"/api/v1/namespaces/{cluster.namespace}/pods/{pod}:9464/proxy/metrics",
                          namespaced=False, check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in raw.splitlines()
              if line.startswith("http_requests_total{")]
    return sum(values) if values else None


def pods_taking_requests(cluster, deployments, wait=10):
    """Per Deployment: its Ready pods, and how many of them answered requests in `wait` seconds
    (None where it cannot be read)."""
    ready = {}
    for name in deployments:
        pods = cluster.json("get", "pods", "-l", f"app.kubernetes.io/name={name}")["items"]
        ready[name] = [p["metadata"]["name"] for p in pods
                       if any(c["type"] == "Ready" and c["status"] == "True"
                              for c in p.get("status", {}).get("conditions", []))]
    everyone = [pod for pods in ready.values() for pod in pods]

    def read_all():
        # Side by side: one kubectl each, which on a loaded node takes a second or more.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return dict(zip(everyone, pool.map(lambda pod: requests_served(cluster, pod), everyone)))

    before = read_all()
    time.sleep(wait)
    after = read_all()
    out = {}
    for name, pods in ready.items():
        if any(before[pod] is None or after[pod] is None for pod in pods):
            out[name] = {"ready": len(pods), "taking_requests": None}
        else:
            out[name] = {"ready": len(pods),
                         "taking_requests": sum(after[pod] > before[pod] for pod in pods)}
    return out
