"""The gateway's public REST API as a client: the one the runner, `scripts/journey.py` and the
siege pod's load (`siege.cluster_load`) all use.

Each thread keeps one keep-alive connection of its own (`reconnect_every` renews it after so many
requests, so that replicas added behind a Service get their share: kube-proxy balances
connections, not requests). `call` never raises for an HTTP status: it returns the status and
the body, parsed as JSON when it is JSON. A connection that fails is opened again and the request
tried again, `retries` times; then the error is raised. `expect` is `call` for an answer that must
have one status, else `Unexpected`. Python's standard library only: the siege image has no other.
"""

import concurrent.futures
import http.client
import json
import threading
import time
import urllib.parse
import uuid


class Unexpected(Exception):
    """An answer with another status than the one expected."""


class Api:
    """The API of the gateway at `base_url` (http or https; a path in it prefixes every request).

    `patience` is how long `expect` asks again by default while the answer is one of `retry_on`.
    """

    def __init__(self, base_url, timeout=30, retries=2, reconnect_every=None, patience=0.0):
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout, self.retries, self.reconnect_every = timeout, retries, reconnect_every
        self.patience = patience
        self.local = threading.local()

    def connection(self):
        """This thread's connection, opened (again) when it has none or has used it enough."""
        local = self.local
        if getattr(local, "connection", None) is not None and self.reconnect_every \
                and local.used >= self.reconnect_every:
            local.connection.close()
            local.connection = None
        if getattr(local, "connection", None) is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            local.connection, local.used = kind(self.host, self.port, timeout=self.timeout), 0
        local.used += 1
        return local.connection

    def close(self):
        """Closes this thread's connection (the next request opens another)."""
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
            self.local.connection = None

    def call(self, method, path, body=None, token=None, form=None, headers=None):
        """(status, body): the body parsed as JSON, else its text, or None when empty."""
        sent = {"Accept": "application/json"} | (headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body)
            sent["Content-Type"] = "application/json"
        for attempt in range(self.retries + 1):
            connection = self.connection()
            try:
                connection.request(method, self.prefix + path, body=data, headers=sent)
                response = connection.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connection = None
                if attempt == self.retries:
                    raise
                time.sleep(0.5)
        return response.status, parse(raw)

    def expect(self, status, method, path, what=None, patience=None, retry_on=(503,), pause=0.5,
               **request):
        """The body of an answer that must have `status`. An answer in `retry_on` (a service still
        starting, an event on its way) is asked again every `pause` seconds for up to `patience`
        seconds (the client's default when None)."""
        deadline = time.monotonic() + (self.patience if patience is None else patience)
        while True:
            got, body = self.call(method, path, **request)
            if got == status:
                return body
            if got not in retry_on or time.monotonic() >= deadline:
                raise Unexpected(f"{what + ': ' if what else ''}{method} {path} answered {got}, "
                                 f"expected {status}: {body}")
            time.sleep(pause)

    def token(self, email, password, who=None):
        """An access token for a password sign-in."""
        body = self.expect(200, "POST", "/api/v1/auth/token", what=f"{who or email} signs in",
                           form={"grant_type": "password", "username": email, "password": password})
        return body["access_token"]

    def customer(self, name="Siege Reader", prefix="siege"):
        """A new customer, signed in: (id, token)."""
        email = f"{prefix}-{uuid.uuid4().hex[:12]}@fleet.example"
        password = f"{prefix} the fleet {uuid.uuid4().hex[:8]}"
        user = self.expect(201, "POST", "/api/v1/users", what="a customer registers",
                           body={"name": name, "email": email, "password": password})
        return user["id"], self.token(email, password)

    def books(self, manager, count, fee=300, title="Siege", author="Load", threads=16):
        """Registers `count` books (`threads` at a time); returns their ids in order."""
        def one(n):
            return self.expect(201, "POST", "/api/v1/books", what="the manager registers a book",
                               token=manager,
                               body={"title": f"{title} {n}", "author": author, "rentalFee": fee})["id"]
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(count)))

    def pages(self, path, token, **filters):
        """Every item of a paged list, following `next` (100 a page)."""
        items, after = [], None
        while True:
            query = filters | {"limit": 100} | ({"after": after} if after else {})
            page = self.expect(200, "GET", f"{path}?{urllib.parse.urlencode(query)}", token=token)
            items += page["items"]
            after = page.get("next")
            if not after:
                return items

    def board(self, token, **filters):
        """The rental board's lines the token may see."""
        return self.pages("/api/v1/views/rentals", token, **filters)

    def book_board(self, token):
        """The book board (managers)."""
        return self.pages("/api/v1/views/books", token)


def parse(raw):
    """An answer's body: JSON when it parses, else its text; None when empty."""
    if not raw:
        return None
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
