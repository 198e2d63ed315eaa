#!/usr/bin/env python3
"""The whole journey through the gateway, each answer checked: the manager signs in and registers
a book; a customer registers, signs in, rents it, cancels (refunded), rents it again and returns
it; the boards (the view service) and the customer's points show all of it.

usage: scripts/journey.py BASE_URL          e.g. http://localhost:8080 (kind), the dev.sh gateway

The manager's credentials: FLEET_MANAGER_EMAIL (default manager@fleet.example) and
FLEET_MANAGER_PASSWORD (required: scripts/kind.sh journey reads it from the cluster's
user-manager Secret; dev.sh writes its own to target/dev-secrets/manager.env). The boards are
built from events, so what they show is waited for (JOURNEY_TIMEOUT seconds, default 120).
Exits 1 with the step that failed and the answer it got. Python's standard library and the
repository's API client (siege.api) only.
"""

import http.client
import os
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

# The repository's root, where the siege package lives: this script runs from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from siege.api import Api, Unexpected  # noqa: E402

TIMEOUT = float(os.environ.get("JOURNEY_TIMEOUT", "120"))


class Failed(Exception):
    pass


def step(message):
    print(f"journey: {message}", flush=True)


class Journey(Api):
    """The API, each answer checked: a wrong one fails the journey with what it was for."""

    def expect(self, status, method, path, what=None, **kwargs):
        try:
            return super().expect(status, method, path, what=what, **kwargs)
        except Unexpected as answer:
            raise Failed(str(answer)) from None

    def expect_eventually(self, status, method, path, what, retry_on=(404, 502, 503), **kwargs):
        """Like expect, but an answer in retry_on (the event has not arrived yet, a replica is
        still starting) is asked again every second until TIMEOUT."""
        return self.expect(status, method, path, what, patience=TIMEOUT, retry_on=retry_on,
                           pause=1, **kwargs)


def until(what, check):
    """check() until it returns something true, or fail after TIMEOUT with its last answer."""
    deadline = time.monotonic() + TIMEOUT
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(1)
    raise Failed(f"{what}: not seen within {TIMEOUT:.0f}s; last answer: {last}")


def field_is(name, value, body, what):
    if not isinstance(body, dict) or body.get(name) != value:
        raise Failed(f"{what}: expected {name} {value!r}, got {body}")


def journey(api, manager_email, manager_password):
    deadline = time.monotonic() + TIMEOUT
    while api.call("GET", "/readyz")[0] != 200:
        if time.monotonic() > deadline:
            raise Failed(f"the gateway at {api.base_url} is not ready after {TIMEOUT:.0f}s")
        time.sleep(2)
    step(f"the gateway at {api.base_url} is ready")

    manager = api.token(manager_email, manager_password, who=f"the manager ({manager_email})")
    step("the manager signed in")
    fee = 450
    title = f"Journey {uuid.uuid4().hex[:8]}"
    book = api.expect(201, "POST", "/api/v1/books", "the manager registers a book", token=manager,
                      body={"title": title, "author": "The Journey", "rentalFee": fee})
    book_id = book["id"]
    step(f"the manager registered {title!r} ({book_id})")

    email = f"journey-{uuid.uuid4().hex[:12]}@example.org"
    password = f"journey {uuid.uuid4().hex}"
    customer = api.expect(201, "POST", "/api/v1/users", "a customer registers",
                          body={"name": "Journey Reader", "email": email, "password": password})
    customer_id = customer["id"]
    token = api.token(email, password, who="the customer")
    step(f"customer {email} registered and signed in")

    # Rental learns of the book from book.events: until then it does not know it (404).
    first = api.expect_eventually(201, "POST", "/api/v1/rentals", "the customer rents the book",
                                  token=token, body={"bookId": book_id})
    field_is("status", "RENTED", first, "the first rental")
    field_is("rentalFee", fee, first, "the first rental")
    step(f"rented: {first['id']}")
    cancelled = api.expect(200, "POST", f"/api/v1/rentals/{first['id']}/cancel",
                           "the customer cancels the rental", token=token)
    field_is("status", "CANCELLED", cancelled, "the cancelled rental")
    step("cancelled")
    again = api.expect_eventually(201, "POST", "/api/v1/rentals", "the customer rents the book again",
                                  retry_on=(409, 503), token=token, body={"bookId": book_id})
    field_is("status", "RENTED", again, "the second rental")
    step(f"rented again: {again['id']}")
    returned = api.expect(200, "POST", f"/api/v1/rentals/{again['id']}/return",
                          "the customer returns the book", token=token)
    field_is("status", "RETURNED", returned, "the returned rental")
    step("returned")
    api.expect(409, "POST", f"/api/v1/rentals/{again['id']}/return",
               "a second return of the same rental is refused", token=token)

    # The payments: the first refunded, the second approved.
    for rental, want in ((first, "REFUNDED"), (again, "APPROVED")):
        def payment(rental=rental, want=want):
            status, body = api.call("GET", f"/api/v1/payments?{urllib.parse.urlencode({'rentalId': rental['id']})}",
                                    token=token)
            items = body.get("items", body) if isinstance(body, dict) else body
            return status == 200 and isinstance(items, list) and any(p.get("status") == want for p in items), \
                (status, body)
        until(f"the payment of rental {rental['id']} {want}", payment)
    step("payments: the first refunded, the second approved")

    # The rental board (customer's own lines): both rentals, each in its final state.
    def board():
        query = urllib.parse.urlencode({"customerId": customer_id, "limit": 100})
        status, body = api.call("GET", f"/api/v1/views/rentals?{query}", token=token)
        if status != 200:
            return False, (status, body)
        lines = {line["id"]: line for line in body.get("items", [])}
        ok = (lines.get(first["id"], {}).get("status") == "CANCELLED"
              and lines.get(first["id"], {}).get("paymentStatus") == "REFUNDED"
              and lines.get(again["id"], {}).get("status") == "RETURNED"
              and lines.get(again["id"], {}).get("paymentStatus") == "APPROVED"
              and lines.get(again["id"], {}).get("bookTitle") == title)
        return ok, body
    until("the rental board to show the cancelled and the returned rental", board)
    line = api.expect(200, "GET", f"/api/v1/views/rentals/{again['id']}", "the board's line of the return",
                      token=token)
    field_is("customerName", "Journey Reader", line, "the board's line of the return")
    step("the rental board shows both rentals (CANCELLED and refunded, RETURNED and paid)")

    # The book board (managers): the book available again, rented twice.
    def book_board():
        after, seen = None, None
        while True:
            query = {"limit": 100} | ({"after": after} if after else {})
            status, body = api.call("GET", f"/api/v1/views/books?{urllib.parse.urlencode(query)}", token=manager)
            if status != 200:
                return False, (status, body)
            seen = next((b for b in body["items"] if b["id"] == book_id), seen)
            after = body.get("next")
            if seen or not after:
                break
        ok = bool(seen) and seen["status"] == "AVAILABLE" and seen["timesRented"] == 2 \
            and seen.get("currentRenter") is None
        return ok, seen
    until("the book board to show the book available again, rented twice", book_board)
    step("the book board shows the book AVAILABLE, rented twice")

    # Points: earned for the returned rental only (none for the cancelled one).
    def points():
        status, body = api.call("GET", "/api/v1/points/me", token=token)
        history = body.get("history", []) if status == 200 and isinstance(body, dict) else []
        ok = any(h.get("rentalId") == again["id"] and h.get("reason") == "RETURNED" for h in history) \
            and not any(h.get("rentalId") == first["id"] for h in history)
        return ok, (status, body)
    _, earned = until("points for the returned rental (and none for the cancelled one)", points)
    step(f"points: {earned['balance']} for the returned rental, none for the cancelled one")
    step("the whole journey passed")


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    password = os.environ.get("FLEET_MANAGER_PASSWORD")
    if not password:
        print("journey: set FLEET_MANAGER_PASSWORD (the manager's password)", file=sys.stderr)
        return 2
    email = os.environ.get("FLEET_MANAGER_EMAIL", "manager@fleet.example")
    try:
        journey(Journey(sys.argv[1]), email, password)
    except Failed as failure:
        print(f"journey: FAILED: {failure}", file=sys.stderr)
        return 1
    except (OSError, http.client.HTTPException, AttributeError, KeyError, TypeError, ValueError) as error:
        print(f"journey: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
