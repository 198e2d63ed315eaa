"""A stand-in gateway on a local port for the tests of the API client and the in-cluster load:
just enough of the public API (sign-in, books, customers, rent, return, /readyz), keep-alive, and
a record of what it was asked."""

import http.server
import json
import threading
import uuid


class Gateway:
    """Serves in a thread of its own from `start()` to `stop()`. `answers` overrides an answer:
    {(method, path): [(status, body), ...]} given in turn, the last one kept."""

    def __init__(self):
        self.requests, self.connections, self.answers = [], set(), {}
        self.lock = threading.Lock()
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with gateway.lock:
                    gateway.requests.append({"method": self.command, "path": self.path,
                                             "headers": dict(self.headers), "body": body})
                    gateway.connections.add(self.client_address)
                    queued = gateway.answers.get((self.command, self.path))
                    given = (queued.pop(0) if len(queued) > 1 else queued[0]) if queued else None
                status, reply = given or gateway.route(self.command, self.path)
                raw = (reply if isinstance(reply, str) else json.dumps(reply)).encode() \
                    if reply is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(reply, str)
                                 else "text/plain")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def route(self, method, path):
        if (method, path) == ("GET", "/readyz"):
            return 200, {"status": "ready"}
        if (method, path) == ("POST", "/api/v1/auth/token"):
            return 200, {"access_token": "token-" + uuid.uuid4().hex[:6]}
        if (method, path) in (("POST", "/api/v1/books"), ("POST", "/api/v1/users"),
                              ("POST", "/api/v1/rentals")):
            return 201, {"id": str(uuid.uuid4())}
        if method == "POST" and path.startswith("/api/v1/rentals/") and path.endswith("/return"):
            return 200, {"status": "RETURNED"}
        return 404, {"title": "Not Found"}

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
