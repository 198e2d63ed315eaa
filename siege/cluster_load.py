"""Rent → return load through the gateway, from inside the cluster: what the siege pod runs
(`python3 -m siege.cluster_load`, the package mounted from the ConfigMap siege/kustomization.yaml
makes).

Each of LOAD_CONCURRENCY workers has a book of its own (no two workers ever want the same
book) and shares a customer with at most four others (rental allows five active rentals per
customer; few customers mean few sign-ins, which the gateway budgets per client), and loops:
rent (201) then return (200), for LOAD_SECONDS. Renting goes gateway → rental → payment, so all
three work for every cycle, which is what the HorizontalPodAutoscalers of the three watch.

Environment: GATEWAY_URL (http://gateway:8080), LOAD_CONCURRENCY (40), LOAD_SECONDS (180),
MANAGER_EMAIL and MANAGER_PASSWORD (the user-manager Secret: the manager registers the books),
LOAD_PROGRESS_EVERY (10). Every LOAD_PROGRESS_EVERY seconds it prints one JSON line
{"progress": ...}, and at the end {"summary": ...}: answers by request and status, cycles done,
cycles per second, and the wall-clock time of the line ("at", Unix seconds). siege/run's cluster
scenarios read those lines (siege.cluster). A worker opens a new connection every
RECONNECT_EVERY requests, so that gateway replicas the HPA adds get their share (kube-proxy
balances connections, not requests). Python's standard library only (the siege image has no
other): this module and siege.api are all the pod needs of the package.
"""

import http.client
import json
import os
import signal
import sys
import threading
import time
import uuid

from siege.api import Api

GATEWAY = os.environ.get("GATEWAY_URL", "http://gateway:8080")
CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "40"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "180"))
PROGRESS_EVERY = float(os.environ.get("LOAD_PROGRESS_EVERY", "10"))
RECONNECT_EVERY = 50

stop = threading.Event()
lock = threading.Lock()
counts = {}  # "rent 201" → n
cycles = [0]
started = time.monotonic()


def count(what, status):
    with lock:
        key = f"{what} {status}"
        counts[key] = counts.get(key, 0) + 1


# Every thread its own connection, renewed every RECONNECT_EVERY requests; a request is not tried
# again here: a failed one is counted, and the worker goes on.
API = Api(GATEWAY, retries=0, reconnect_every=RECONNECT_EVERY)


def call(method, path, **request):
    """(status, body); a request that got no answer is counted as "error:<what happened>"."""
    try:
        return API.call(method, path, **request)
    except (http.client.HTTPException, OSError) as error:
        return f"error:{type(error).__name__}", None


def token(email, password):
    """A token; sign-ins have a budget of their own per client at the gateway (a burst of 5,
    then 20 a minute), so a 429 waits as long as it is told to."""
    deadline = time.monotonic() + 300
    while True:
        status, body = call("POST", "/api/v1/auth/token",
                            form={"grant_type": "password", "username": email, "password": password})
        if status == 200:
            return body["access_token"]
        if time.monotonic() > deadline:
            raise SystemExit(f"could not sign in as {email}: {status} {body}")
        time.sleep(3 if status == 429 else 1)


class Customer:
    """A customer shared by up to five workers (rental allows five active rentals each), so
    that few sign-ins are needed; its token is renewed once when it expires."""

    def __init__(self):
        self.email = f"load-{uuid.uuid4().hex[:12]}@example.org"
        self.password = f"load {uuid.uuid4().hex}"
        self.lock = threading.Lock()
        status, body = call("POST", "/api/v1/users", body={"name": "Load Reader", "email": self.email,
                                                           "password": self.password})
        count("register", status)
        if status != 201:
            raise SystemExit(f"could not register a customer: {status} {body}")
        self.token = token(self.email, self.password)

    def renew(self, stale):
        with self.lock:
            if self.token == stale:
                self.token = token(self.email, self.password)
            return self.token


def worker(customer, book_id):
    outstanding = None  # a rental whose return has not succeeded yet
    known = False  # rental knows the book (it learns of it from book.events)
    while not stop.is_set():
        bearer = customer.token
        if outstanding is None:
            status, body = call("POST", "/api/v1/rentals", token=bearer, body={"bookId": book_id})
            if status == 404 and not known:
                time.sleep(0.5)  # not yet: the event is on its way
                continue
            known = True
            count("rent", status)
            if status == 401:
                customer.renew(bearer)
                continue
            if status != 201:
                time.sleep(0.2)
                continue
            outstanding = body["id"]
        status, _ = call("POST", f"/api/v1/rentals/{outstanding}/return", token=bearer)
        count("return", status)
        if status == 401:
            customer.renew(bearer)
        elif status in (200, 409):  # 409: it was returned already (an answer lost on the way)
            if status == 200:
                with lock:
                    cycles[0] += 1
            outstanding = None
        else:
            time.sleep(0.2)


def figures(kind):
    with lock:
        elapsed = time.monotonic() - started
        return {kind: {"at": round(time.time(), 2), "seconds": round(elapsed, 1),
                       "concurrency": CONCURRENCY, "cycles": cycles[0],
                       "cycles_per_s": round(cycles[0] / elapsed, 1) if elapsed else 0.0,
                       "answers": dict(sorted(counts.items()))}}


def main():
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    email, password = os.environ.get("MANAGER_EMAIL"), os.environ.get("MANAGER_PASSWORD")
    if not email or not password:
        raise SystemExit("MANAGER_EMAIL and MANAGER_PASSWORD are required (the user-manager Secret)")
    while call("GET", "/readyz")[0] != 200:
        print("waiting for the gateway", flush=True)
        time.sleep(2)
    manager = token(email, password)
    books = []
    for n in range(CONCURRENCY):
        status, body = call("POST", "/api/v1/books", token=manager,
                                   body={"title": f"Load {n} {uuid.uuid4().hex[:8]}", "author": "Load",
                                         "rentalFee": 100})
        count("book", status)
        if status != 201:
            raise SystemExit(f"could not register a book: {status} {body}")
        books.append(body["id"])
    customers = [Customer() for _ in range((CONCURRENCY + 4) // 5)]
    print(f"rent → return through {GATEWAY}: {CONCURRENCY} workers, {len(customers)} customers, "
          f"{SECONDS:.0f} s", flush=True)
    threads = [threading.Thread(target=worker, args=(customers[n // 5], books[n]), daemon=True)
               for n in range(CONCURRENCY)]
    global started
    started = time.monotonic()  # the load's own time, set-up excluded
    for thread in threads:
        thread.start()
    deadline = started + SECONDS
    while not stop.wait(min(PROGRESS_EVERY, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            stop.set()
            break
        print(json.dumps(figures("progress")), flush=True)
    for thread in threads:
        thread.join(timeout=35)
    summary = figures("summary")
    print(json.dumps(summary), flush=True)
    return 0 if summary["summary"]["cycles"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
