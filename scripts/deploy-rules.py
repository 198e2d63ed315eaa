#!/usr/bin/env python3
"""The fleet's own rules over rendered manifests (scripts/check-deploy.sh runs this with the
venv's Python, which has PyYAML). Each argument is one rendered kustomization (NAME.yaml); each
rule prints what it found and every breach as "RULE <name>: ...". Exits 1 on any breach.

Rules:
- connection-budget: every replica the HPAs may run, plus each Deployment's rollout surge, times
  its DATABASE_MAX_CONNECTIONS, plus the stated headroom and reserved slots, fits in the stated
  PostgreSQL max_connections (ConfigMap connection-budget). Behind PgBouncer (the ConfigMap names
  PGBOUNCER_DEFAULT_POOL_SIZE), the pools must fit in PgBouncer's max_client_conn and PgBouncer's
  server pools (one per service role) in max_connections. An in-cluster PostgreSQL must be
  started with the budget's max_connections.
- jobs-reapplicable: a Job's pod template cannot change once created, so every Job is named after
  its own generated ConfigMap (name and hash alike), references no other ConfigMap, runs the
  image that ConfigMap records, and agrees with every other ConfigMap on the settings it shares.
- topology-spread: every Deployment spreads its replicas over zones and nodes, as a preference.
- ops-private: no Ingress routes to the operations port, and no NodePort or LoadBalancer Service
  exposes it.
"""

import math
import re
import sys
from pathlib import Path

import yaml

OPS_PORT = 9464
DEFAULT_POOL = 10  # fleet-database's DATABASE_MAX_CONNECTIONS default
HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")

breaches = []


def breach(rule, render, message):
    breaches.append(f"RULE {rule}: {render}: {message}")


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def config_map(objects, name):
    for o in by_kind(objects, "ConfigMap"):
        if o["metadata"]["name"] == name:
            return o
    return None


def variable(objects, container, name):
    """The value `name` gets in `container` from its env or its envFrom ConfigMaps (later wins)."""
    value = None
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        cm = config_map(objects, ref) if ref else None
        if cm and name in (cm.get("data") or {}):
            value = cm["data"][name]
    for var in container.get("env") or []:
        if var["name"] == name:
            if "value" in var:
                value = var["value"]
            ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                cm = config_map(objects, ref["name"])
                value = (cm.get("data") or {}).get(ref["key"]) if cm else None
    return value


def uses_database(container):
    return any(v["name"] == "DATABASE_URL" for v in container.get("env") or [])


def surge(deployment, replicas):
    value = (
        ((deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%")
    )
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value)


def connection_budget(render, objects):
    budgets = [
        o for o in by_kind(objects, "ConfigMap")
        if re.fullmatch(r"connection-budget(-[a-z0-9]{10})?", o["metadata"]["name"])
    ]
    deployments = by_kind(objects, "Deployment")
    if not deployments:
        return
    if len(budgets) != 1:
        breach("connection-budget", render, f"expected one ConfigMap connection-budget, found {len(budgets)}")
        return
    budget = budgets[0]["data"]
    try:
        limit = int(budget["POSTGRES_MAX_CONNECTIONS"])
        reserved = int(budget["POSTGRES_SUPERUSER_RESERVED_CONNECTIONS"])
        headroom = int(budget["CONNECTION_HEADROOM"])
        pooler_pool = int(budget["PGBOUNCER_DEFAULT_POOL_SIZE"]) if "PGBOUNCER_DEFAULT_POOL_SIZE" in budget else None
        pooler_clients = int(budget["PGBOUNCER_MAX_CLIENT_CONN"]) if "PGBOUNCER_MAX_CLIENT_CONN" in budget else None
    except (KeyError, ValueError) as e:
        breach("connection-budget", render, f"connection-budget lacks a number: {e}")
        return
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler")}
    rows, total, roles = [], 0, 0
    for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        name = d["metadata"]["name"]
        containers = d["spec"]["template"]["spec"]["containers"]
        if not any(uses_database(c) for c in containers):
            continue
        roles += 1
        pool = 0
        for c in containers:
            if uses_database(c):
                raw = variable(objects, c, "DATABASE_MAX_CONNECTIONS")
                pool += int(raw) if raw is not None else DEFAULT_POOL
        hpa = hpas.get(name)
        most = int(hpa["spec"]["maxReplicas"]) if hpa else int(d["spec"].get("replicas", 1))
        extra = surge(d, most)
        connections = (most + extra) * pool
        total += connections
        rows.append((name, most, extra, pool, connections))
    print(f"{render}: connection budget")
    print(f"  {'deployment':<18}{'max replicas':>13}{'surge':>7}{'pool':>6}{'connections':>13}")
    for name, most, extra, pool, connections in rows:
        print(f"  {name:<18}{most:>13}{extra:>7}{pool:>6}{connections:>13}")
    if pooler_pool is None:
        need = total + headroom + reserved
        print(f"  pools {total} + headroom {headroom} + reserved {reserved} = {need}"
              f" of max_connections {limit}")
        if need > limit:
            breach("connection-budget", render,
                   f"the pools at the HPA maxima need {total} connections, plus headroom {headroom} "
                   f"and reserved {reserved}: {need} > max_connections {limit} "
                   "(lower a DATABASE_MAX_CONNECTIONS or an HPA maximum, or raise the limit)")
    else:
        server = roles * pooler_pool + headroom + reserved
        print(f"  pools {total} of PgBouncer max_client_conn {pooler_clients};"
              f" PgBouncer {roles} roles x default_pool_size {pooler_pool} + headroom {headroom}"
              f" + reserved {reserved} = {server} of max_connections {limit}")
        if pooler_clients is None or total > pooler_clients:
            breach("connection-budget", render,
                   f"the pools at the HPA maxima open {total} client connections > PgBouncer "
                   f"max_client_conn {pooler_clients}")
        if server > limit:
            breach("connection-budget", render,
                   f"PgBouncer's server pools need {server} connections > max_connections {limit}")
    # An in-cluster PostgreSQL runs with the budget's limit.
    for s in by_kind(objects, "StatefulSet"):
        for c in s["spec"]["template"]["spec"]["containers"]:
            if not c.get("image", "").startswith("postgres:"):
                continue
            args = " ".join(c.get("args") or [])
            started = variable(objects, c, "POSTGRES_MAX_CONNECTIONS")
            if "max_connections=$(POSTGRES_MAX_CONNECTIONS)" not in args or started != str(limit):
                breach("connection-budget", render,
                       f"StatefulSet {s['metadata']['name']} is not started with the budget's "
                       f"max_connections {limit} (args {c.get('args')}, POSTGRES_MAX_CONNECTIONS {started})")


def referenced_config_maps(pod):
    names = set()
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        for source in c.get("envFrom") or []:
            if "configMapRef" in source:
                names.add(source["configMapRef"]["name"])
        for var in c.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                names.add(ref["name"])
    for v in pod.get("volumes") or []:
        if "configMap" in v:
            names.add(v["configMap"]["name"])
        for source in (v.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                names.add(source["configMap"]["name"])
    return names


def referenced_secrets(pod):
    names = set()
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        for source in c.get("envFrom") or []:
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
        for var in c.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    for v in pod.get("volumes") or []:
        if "secret" in v:
            names.add(v["secret"]["secretName"])
    return names


def jobs_reapplicable(render, objects):
    for job in by_kind(objects, "Job"):
        name = job["metadata"]["name"]
        pod = job["spec"]["template"]["spec"]
        own = config_map(objects, name)
        if own is None or not HASH_SUFFIX.search(name):
            breach("jobs-reapplicable", render,
                   f"Job {name} is not named after a generated ConfigMap of its own "
                   "(kubernetes/base/job-names.yaml): a changed template would fail to re-apply")
            continue
        others = sorted(referenced_config_maps(pod) - {name})
        if others:
            breach("jobs-reapplicable", render,
                   f"Job {name} references ConfigMap(s) {', '.join(others)} besides its own: a change "
                   "there changes its template but not its name; put the settings in its own ConfigMap")
        recorded = (own.get("data") or {}).get("image")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            if c["image"] != recorded:
                breach("jobs-reapplicable", render,
                       f"Job {name} runs {c['image']}, its ConfigMap records {recorded!r}: "
                       "a new image must name a new Job")
        for secret in sorted(referenced_secrets(pod)):
            if HASH_SUFFIX.search(secret):
                breach("jobs-reapplicable", render,
                       f"Job {name} references Secret {secret}, whose name changes with its content")
        data = own.get("data") or {}
        for other in by_kind(objects, "ConfigMap"):
            if other is own:
                continue
            for key, value in (other.get("data") or {}).items():
                if key in data and key != "image" and data[key] != value:
                    breach("jobs-reapplicable", render,
                           f"Job {name}'s {key}={data[key]!r} differs from ConfigMap "
                           f"{other['metadata']['name']}'s {value!r}")
        print(f"{render}: Job {name} named after its own ConfigMap (image {recorded})")


def topology_spread(render, objects):
    for d in by_kind(objects, "Deployment"):
        name = d["metadata"]["name"]
        constraints = d["spec"]["template"]["spec"].get("topologySpreadConstraints") or []
        keys = {c.get("topologyKey") for c in constraints}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
            if key not in keys:
                breach("topology-spread", render, f"Deployment {name} does not spread over {key}")
        for c in constraints:
            if c.get("whenUnsatisfiable") != "ScheduleAnyway":
                breach("topology-spread", render,
                       f"Deployment {name} requires its spread over {c.get('topologyKey')} "
                       "(a one-node cluster could not schedule it): use ScheduleAnyway")


def ops_private(render, objects):
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}

    def exposes_ops(port):
        return port.get("name") == "ops" or port.get("targetPort") in ("ops", OPS_PORT) or port.get("port") == OPS_PORT

    for s in services.values():
        if s["spec"].get("type") in ("NodePort", "LoadBalancer") and any(
            exposes_ops(p) for p in s["spec"].get("ports") or []
        ):
            breach("ops-private", render, f"{s['spec']['type']} Service {s['metadata']['name']} exposes the operations port")
    for ingress in by_kind(objects, "Ingress"):
        backends = [((ingress["spec"].get("defaultBackend") or {}).get("service"))]
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backends.append(path["backend"].get("service"))
        for backend in filter(None, backends):
            port = backend.get("port") or {}
            target = services.get(backend["name"])
            target_ports = (target or {}).get("spec", {}).get("ports") or []
            chosen = [p for p in target_ports if p.get("name") == port.get("name") or p.get("port") == port.get("number")]
            if port.get("name") == "ops" or port.get("number") == OPS_PORT or any(exposes_ops(p) for p in chosen):
                breach("ops-private", render, f"Ingress {ingress['metadata']['name']} routes to the operations port")


def main(paths):
    for path in paths:
        render = Path(path).stem
        objects = load(path)
        connection_budget(render, objects)
        jobs_reapplicable(render, objects)
        topology_spread(render, objects)
        ops_private(render, objects)
    for line in breaches:
        print(line, file=sys.stderr)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
