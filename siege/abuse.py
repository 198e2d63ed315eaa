"""`siege/run abuse`: hostile traffic against the whole local fleet while customers rent.

Customers rent through the gateway (siege, as in the other scenarios) for the same time in every
phase; each attack runs beside them for that time:
1. calm: no attack, the reference;
2. sign-in storm: STORM clients sign in as fast as they can, wrong passwords for a few real
   accounts and for unknown ones (the gateway's per-client sign-in budget is raised for the one
   load address, so the storm reaches the user service as a botnet's would); meanwhile a
   customer signs in with the right password from its own client;
3. registration storm: STORM_CLIENTS loopback addresses (127.0.0.2 and up, distinct clients to
   the gateway) register an address that is already taken as fast as they can (the gateway's
   per-client registration budget raised, as for a botnet); meanwhile a customer signs in every
   second from a client of its own;
4. third-party lockout: a stranger's client sends wrong passwords for a customer, again and
   again past its hard stop, while the owner signs in every second from another client;
5. method scan: 1,000 distinct made-up methods at every process, then the series counts again;
6. slow clients: SLOW connections to the gateway that send part of a request head and never
   finish it, while a new client asks for /livez;
7. internal endpoints: payment's internal API, which only rental may call, called without a
   token, with garbage, and with a customer's and a manager's token;
8. after: no attack again.
For each phase it reports the customers' goodput (201s per second) and p99, the attack's
answers, and the RSS of the user service and the gateway before, at the highest during, and
after. The promise: customers are served in every phase, attackers get only the answers listed
in the scenario, memory stays under its bound, and nothing is paid or refunded for an attacker.
"""

import http.client
import json
import random
import socket
import string
import threading
import time
import urllib.parse
import uuid

from siege.common import say, wait_for
from siege.fleet import metrics
from siege.workload import books_for, check, siege, summary_of

PAYMENT_INTERNAL = "/internal/v1/payments"


def request(port, method, path, headers=None, body=None, timeout=10, client="127.0.0.1"):
    """One request on a connection of its own from address `client`: (status, headers, body) or
    (None, {}, error)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                            source_address=(client, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    except (OSError, http.client.HTTPException) as e:
        return None, {}, str(e)
    finally:
        connection.close()


def count(statuses, status):
    key = str(status)
    statuses[key] = statuses.get(key, 0) + 1


def series_count(port):
    return sum(1 for line in metrics(port).splitlines() if line and not line.startswith("#"))


class Watch:
    """Samples the RSS of some processes until stopped; keeps the highest."""

    def __init__(self, fleet, instances):
        self.fleet, self.instances = fleet, instances
        self.highest = {i: fleet.rss_mb(i) for i in instances}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.done.wait(0.2):
            for instance in self.instances:
                try:
                    self.highest[instance] = max(self.highest[instance], self.fleet.rss_mb(instance))
                except (OSError, SystemExit):
                    pass

    def stop(self):
        self.done.set()
        self.thread.join()
        return {i: round(mb, 1) for i, mb in self.highest.items()}


# --- the attacks: each runs until `stop` is set and returns what it saw ------------------------


def sign_in_storm(spec, load, fleet, stop):
    gateway = dict(fleet.instances())["gateway"]
    victims = []
    for _ in range(3):
        email = f"victim-{uuid.uuid4().hex[:10]}@fleet.example"
        load.api.expect(201, "POST", "/api/v1/users",
                        body={"name": "Storm Victim", "email": email, "password": "the right one " + email})
        victims.append(email)
    statuses, lock = {}, threading.Lock()

    def attacker():
        while not stop.is_set():
            email = random.choice(victims) if random.random() < 0.3 else \
                f"nobody-{uuid.uuid4().hex[:10]}@fleet.example"
            form = f"grant_type=password&username={email}&password=guess-{random.randrange(10**6)}"
            status = request(gateway, "POST", "/api/v1/auth/token", body=form, timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})[0]
            with lock:
                count(statuses, status)

    # The customer signs in during the storm with the right password, as a person would: a 503
    # or 429 is tried again after its Retry-After.
    email = f"storm-reader-{uuid.uuid4().hex[:10]}@fleet.example"
    password = "reads during the storm"
    load.api.expect(201, "POST", "/api/v1/users",
                    body={"name": "Storm Reader", "email": email, "password": password})
    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(spec["storm"])]
    for thread in threads:
        thread.start()
    time.sleep(2)
    started, tries, signed_in = time.monotonic(), [], None
    while signed_in is None and time.monotonic() - started < 30:
        status, headers, _ = request(gateway, "POST", "/api/v1/auth/token", timeout=30,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                                     body=f"grant_type=password&username={email}&password={password.replace(' ', '+')}")
        tries.append(status)
        if status == 200:
            signed_in = time.monotonic() - started
        else:
            time.sleep(min(5.0, float(headers.get("retry-after", headers.get("Retry-After", 1)))))
    stop.wait()
    for thread in threads:
        thread.join()
    return {"attempts": sum(statuses.values()), "attack_statuses": dict(sorted(statuses.items())),
            "customer_sign_in_tries": tries, "customer_signed_in_after_s": signed_in}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def sign_in_form(email, password):
    return urllib.parse.urlencode({"grant_type": "password", "username": email, "password": password})


def sign_ins_every_second(gateway, email, password, client, stop):
    """A customer signing in once a second until `stop`: [(status, ms)]."""
    outcomes = []
    while not stop.wait(1.0):
        at = time.monotonic()
        status = request(gateway, "POST", "/api/v1/auth/token", headers=FORM, timeout=30,
                         body=sign_in_form(email, password), client=client)[0]
        outcomes.append((status, (time.monotonic() - at) * 1000))
    return outcomes


def sign_in_summary(outcomes):
    ok = sorted(ms for status, ms in outcomes if status == 200)
    return {"customer_sign_ins": len(outcomes), "customer_signed_in": len(ok),
            "customer_sign_in_statuses": sorted({str(status) for status, _ in outcomes}),
            "customer_sign_in_ms": {"p50": round(ok[len(ok) // 2], 1), "max": round(ok[-1], 1)} if ok else None}


def new_customer(load, name, password):
    """Registers a customer of the phase's own: its email."""
    email = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:10]}@fleet.example"
    load.api.expect(201, "POST", "/api/v1/users",
                    body={"name": name, "email": email, "password": password})
    return email


def registration_storm(spec, load, fleet, stop):
    gateway = dict(fleet.instances())["gateway"]
    password = "signs in during a registration storm"
    email = new_customer(load, "Registered Once", password)
    statuses, lock = {}, threading.Lock()
    body = json.dumps({"name": "Storm", "email": email, "password": "a long storm password"})

    def attacker(client):
        while not stop.is_set():
            status = request(gateway, "POST", "/api/v1/users", body=body, client=client,
                             headers={"Content-Type": "application/json"}, timeout=30)[0]
            with lock:
                count(statuses, status)

    clients = [f"127.0.0.{2 + n % spec['storm_clients']}" for n in range(spec["storm_connections"])]
    threads = [threading.Thread(target=attacker, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    outcomes = sign_ins_every_second(gateway, email, password, "127.0.0.99", stop)
    for thread in threads:
        thread.join()
    return {"attempts": sum(statuses.values()), "attack_statuses": dict(sorted(statuses.items())),
            "storm_clients": spec["storm_clients"]} | sign_in_summary(outcomes)


def third_party_lockout(spec, load, fleet, stop):
    gateway = dict(fleet.instances())["gateway"]
    password = "the owner's own long password"
    email = new_customer(load, "Owner", password)
    statuses = {}
    # The stranger strikes first, past the hard stop, then keeps striking five times a second.
    for _ in range(8):
        count(statuses, request(gateway, "POST", "/api/v1/auth/token", headers=FORM,
                                body=sign_in_form(email, "a guess"), client="127.0.0.66")[0])

    def stranger():
        while not stop.wait(0.2):
            count(statuses, request(gateway, "POST", "/api/v1/auth/token", headers=FORM,
                                    body=sign_in_form(email, "a guess"), client="127.0.0.66")[0])

    thread = threading.Thread(target=stranger, daemon=True)
    thread.start()
    outcomes = sign_ins_every_second(gateway, email, password, "127.0.0.98", stop)
    thread.join()
    return {"attempts": sum(statuses.values()), "attack_statuses": dict(sorted(statuses.items()))} \
        | sign_in_summary(outcomes)


def method_scan(spec, load, fleet, stop):
    targets = {name: port for name, port in fleet.instances()}

    def scan(n, seed):
        rng = random.Random(seed)
        for port in targets.values():
            for _ in range(n):
                method = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(8, 40)))
                request(port, method, "/livez")

    # A first handful may add the one series each process keeps for every unknown method, and a
    # first scrape its own.
    scan(10, 1)
    for port in targets.values():
        series_count(port)
    before = {name: series_count(port) for name, port in targets.items()}
    gateway_rss = fleet.rss_mb("gateway")
    scan(spec["methods"], 2)
    after = {name: series_count(port) for name, port in targets.items()}
    stop.wait()
    grown = {name: after[name] - before[name] for name in targets if after[name] != before[name]}
    return {"methods_per_process": spec["methods"], "series_before": before, "series_after": after,
            "series_grown": grown, "gateway_rss_before_scan_mb": round(gateway_rss, 1),
            "gateway_rss_after_scan_mb": round(fleet.rss_mb("gateway"), 1)}


def slow_clients(spec, load, fleet, stop):
    gateway = dict(fleet.instances())["gateway"]
    sockets = []
    for _ in range(spec["slow"]):
        s = socket.create_connection(("127.0.0.1", gateway), timeout=5)
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: fleet\r\n")
        sockets.append(s)
    opened = time.monotonic()
    # A new client while they hang.
    livez_ms = []
    for _ in range(10):
        at = time.monotonic()
        status = request(gateway, "GET", "/livez", timeout=5)[0]
        livez_ms.append((time.monotonic() - at) * 1000 if status == 200 else None)
        time.sleep(0.1)
    # Dribble a header byte a second; a server that bounds the head's read closes them anyway.
    closed_at = {}
    while len(closed_at) < len(sockets) and time.monotonic() - opened < spec["slow_patience_s"]:
        for n, s in enumerate(sockets):
            if n in closed_at:
                continue
            try:
                s.sendall(b"X")
                s.settimeout(0.001)
                if s.recv(1024) == b"":
                    closed_at[n] = time.monotonic() - opened
            except (BlockingIOError, socket.timeout):
                pass
            except OSError:
                closed_at[n] = time.monotonic() - opened
        time.sleep(1)
    for s in sockets:
        s.close()
    stop.wait()
    times = sorted(closed_at.values())
    return {"slow_connections": len(sockets), "closed": len(times),
            "closed_after_s": {"first": round(times[0], 1), "last": round(times[-1], 1)} if times else None,
            "new_client_livez_ms": [round(ms, 1) if ms is not None else None for ms in livez_ms]}


def internal_endpoints(spec, load, fleet, stop):
    payment = dict(fleet.instances())["payment"]
    rental_id = str(uuid.uuid4())
    # A payment the fleet made for a customer's rent: an attacker would like it refunded.
    rent = load.api.expect(201, "POST", "/api/v1/rentals", token=load.token,
                           body={"bookId": load.spare_book})
    paid = wait_for("the rent's payment", lambda: load.api.call(
        "GET", f"/api/v1/payments?rentalId={rent['id']}", token=load.manager)[1]["items"], timeout=30)[0]
    tokens = {"no token": None, "garbage": "not.a.token", "customer": load.token, "manager": load.manager}
    statuses = {}
    for who, token in tokens.items():
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        pay = json.dumps({"rentalId": rental_id, "userId": load.customer_id, "amount": 1})
        statuses[who] = {
            "pay": request(payment, "POST", PAYMENT_INTERNAL, headers=headers, body=pay)[0],
            "look up": request(payment, "GET", f"{PAYMENT_INTERNAL}?rentalId={rental_id}", headers=headers)[0],
            "refund": request(payment, "POST", f"{PAYMENT_INTERNAL}/{paid['id']}/refund", headers=headers)[0],
        }
    stop.wait()
    charged = load.api.call("GET", f"/api/v1/payments?rentalId={rental_id}", token=load.manager)[1]["items"]
    still = load.api.expect(200, "GET", f"/api/v1/payments/{paid['id']}", token=load.manager)
    return {"attack_statuses": statuses, "charged_for_attacker": len(charged),
            "victim_payment_status": still["status"]}


ATTACKS = {
    "calm": None,
    "sign-in storm": sign_in_storm,
    "registration storm": registration_storm,
    "third-party lockout": third_party_lockout,
    "method scan": method_scan,
    "slow clients": slow_clients,
    "internal endpoints": internal_endpoints,
    "after": None,
}


def abuse(spec, load, fleet, quick):
    if not fleet:
        raise SystemExit("abuse measures local processes' memory: run it without --url")
    seconds = spec["quick_seconds"] if quick else spec["seconds"]
    concurrency = spec["concurrency"]
    per_phase = books_for(spec, seconds, concurrency)
    books = load.books(per_phase * len(ATTACKS) + 1, fleet)
    load.spare_book = books.pop()
    watched = ["user", "gateway"]
    failures, phases, series = [], [], []
    for n, (name, attack) in enumerate(ATTACKS.items()):
        stop, seen = threading.Event(), {}
        before = {i: round(fleet.rss_mb(i), 1) for i in watched}
        watch = Watch(fleet, watched)
        worker = None
        if attack:
            def work(attack=attack, stop=stop, seen=seen):
                seen.update(attack(spec, load, fleet, stop))
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
        mine = books[n * per_phase:(n + 1) * per_phase]
        rents = siege(f"abuse-{name.replace(' ', '-')}", load.rent_lines(mine), load.token,
                      concurrency, seconds=seconds, delay=spec["delay"])
        stop.set()
        if worker:
            worker.join()
        during = watch.stop()
        time.sleep(1)
        after = {i: round(fleet.rss_mb(i), 1) for i in watched}
        check(f"customers' rents during {name}", rents, spec["expect"]["rent"], failures)
        ok = sum(1 for _, s, _ in rents["answers"] if s == 201)
        elapsed = rents["siege"]["elapsed_time"]
        phase = summary_of(f"rents during {name}", rents, {
            "goodput_per_s": ok / elapsed if elapsed else 0,
            "rss_mb": {i: {"before": before[i], "highest": during[i], "after": after[i]} for i in watched},
        } | seen)
        phases.append(phase)
        series.append((name, rents, None))
        judge(name, phase, spec, failures)
        say_phase(name, phase)
    return phases, series, failures, []


def judge(name, phase, spec, failures):
    expect = spec["expect"]
    for instance, bound in expect["rss_mb"].items():
        if phase["rss_mb"][instance]["highest"] > bound:
            failures.append(f"{name}: {instance} reached {phase['rss_mb'][instance]['highest']} MB "
                            f"(bound {bound} MB)")
    if name == "sign-in storm":
        wrong = {s: n for s, n in phase["attack_statuses"].items()
                 if s == "None" or int(s) not in expect["storm"]}
        if wrong:
            failures.append(f"sign-in storm: answers other than {expect['storm']}: {wrong}")
        if phase["customer_signed_in_after_s"] is None:
            failures.append(f"sign-in storm: the customer could not sign in: {phase['customer_sign_in_tries']}")
    if name in ("registration storm", "third-party lockout"):
        wrong = {s: n for s, n in phase["attack_statuses"].items()
                 if s == "None" or int(s) not in expect[name.split()[0].replace("-", "_")]}
        if wrong:
            failures.append(f"{name}: answers other than expected: {wrong}")
        signed_in, tried = phase["customer_signed_in"], phase["customer_sign_ins"]
        if tried == 0 or signed_in / tried < expect["customer_sign_ins"]:
            failures.append(f"{name}: the customer signed in {signed_in} of {tried} times")
    if name == "method scan" and phase["series_grown"]:
        failures.append(f"method scan: series grew: {phase['series_grown']}")
    if name == "slow clients":
        if phase["closed"] != phase["slow_connections"]:
            failures.append(f"slow clients: {phase['slow_connections'] - phase['closed']} never closed")
        slow = [ms for ms in phase["new_client_livez_ms"] if ms is None or ms > expect["livez_ms"]]
        if slow:
            failures.append(f"slow clients: a new client waited: {phase['new_client_livez_ms']}")
    if name == "internal endpoints":
        for who, answers in phase["attack_statuses"].items():
            allowed = [401] if who in ("no token", "garbage") else [403]
            if any(status not in allowed for status in answers.values()):
                failures.append(f"internal endpoints, {who}: {answers} (expected {allowed})")
        if phase["charged_for_attacker"] or phase["victim_payment_status"] != "APPROVED":
            failures.append(f"internal endpoints: charged {phase['charged_for_attacker']}, the "
                            f"victim's payment is {phase['victim_payment_status']}")


def say_phase(name, phase):
    rss = ", ".join(f"{i} {r['before']}→{r['highest']}→{r['after']} MB" for i, r in phase["rss_mb"].items())
    say(f"{name}: {phase['goodput_per_s']:.1f} rents/s, p99 {phase['p99_ms']:.0f} ms; RSS {rss}")
