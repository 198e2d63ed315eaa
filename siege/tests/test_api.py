"""The API client against a stand-in gateway on a local port."""

import threading
import unittest
import urllib.parse

from siege.api import Api, Unexpected, parse
from siege.tests.gateway import Gateway


class ApiTest(unittest.TestCase):
    def setUp(self):
        self.gateway = Gateway().start()
        self.addCleanup(self.gateway.stop)

    def api(self, *args, **kwargs):
        api = Api(*args, **kwargs)
        self.addCleanup(api.close)
        return api

    def test_a_json_body_is_parsed_and_the_request_says_what_it_sends(self):
        api = self.api(self.gateway.url)
        status, body = api.call("POST", "/api/v1/books", body={"title": "T"}, token="abc")
        self.assertEqual(status, 201)
        self.assertIn("id", body)
        sent = self.gateway.requests[-1]
        self.assertEqual(sent["headers"]["Authorization"], "Bearer abc")
        self.assertEqual(sent["headers"]["Content-Type"], "application/json")
        self.assertEqual(sent["headers"]["Accept"], "application/json")
        self.assertEqual(sent["body"], '{"title": "T"}')

    def test_a_form_is_sent_url_encoded(self):
        token = self.api(self.gateway.url).token("a@b.example", "p w")
        self.assertTrue(token.startswith("token-"))
        sent = self.gateway.requests[-1]
        self.assertEqual(sent["headers"]["Content-Type"], "application/x-www-form-urlencoded")
        self.assertEqual(urllib.parse.parse_qs(sent["body"]),
                         {"grant_type": ["password"], "username": ["a@b.example"], "password": ["p w"]})

    def test_an_http_status_is_returned_not_raised_and_a_body_that_is_not_json_is_its_text(self):
        self.gateway.answers[("GET", "/plain")] = [(500, "it broke")]
        self.assertEqual(self.api(self.gateway.url).call("GET", "/plain"), (500, "it broke"))
        self.assertEqual(self.api(self.gateway.url).call("GET", "/missing")[0], 404)

    def test_expect_names_what_failed(self):
        with self.assertRaises(Unexpected) as raised:
            self.api(self.gateway.url).expect(200, "GET", "/missing", what="the board")
        self.assertEqual(str(raised.exception),
                         "the board: GET /missing answered 404, expected 200: {'title': 'Not Found'}")

    def test_expect_asks_again_while_the_answer_is_one_to_wait_out(self):
        self.gateway.answers[("GET", "/slow")] = [(503, None), (503, None), (200, {"ok": True})]
        api = self.api(self.gateway.url, patience=10)
        self.assertEqual(api.expect(200, "GET", "/slow", pause=0.01), {"ok": True})
        self.assertEqual(sum(r["path"] == "/slow" for r in self.gateway.requests), 3)
        # Without patience, the first 503 is the answer.
        self.gateway.answers[("GET", "/slow")] = [(503, None), (200, {"ok": True})]
        with self.assertRaises(Unexpected):
            self.api(self.gateway.url).expect(200, "GET", "/slow")

    def test_one_keep_alive_connection_a_thread_renewed_every_so_many_requests(self):
        api = self.api(self.gateway.url)
        for _ in range(5):
            api.call("GET", "/readyz")
        self.assertEqual(len(self.gateway.connections), 1)
        thread = threading.Thread(target=lambda: (api.call("GET", "/readyz"), api.close()))
        thread.start()
        thread.join()
        self.assertEqual(len(self.gateway.connections), 2)
        renewed = self.api(self.gateway.url, reconnect_every=2)
        for _ in range(6):
            renewed.call("GET", "/readyz")
        self.assertEqual(len(self.gateway.connections), 5)

    def test_a_path_in_the_base_url_prefixes_every_request(self):
        self.api(self.gateway.url + "/prefix/").call("GET", "/readyz")
        self.assertEqual(self.gateway.requests[-1]["path"], "/prefix/readyz")

    def test_a_connection_refused_is_tried_again_then_raised(self):
        port = self.gateway.server.server_port
        self.gateway.stop()
        api = self.api(f"http://127.0.0.1:{port}", retries=1)
        with self.assertRaises(OSError):
            api.call("GET", "/readyz")

    def test_pages_follows_next(self):
        self.gateway.answers[("GET", "/api/v1/views/books?limit=100")] = [
            (200, {"items": [1, 2], "next": "k"})]
        self.gateway.answers[("GET", "/api/v1/views/books?limit=100&after=k")] = [
            (200, {"items": [3], "next": None})]
        self.assertEqual(self.api(self.gateway.url).book_board("t"), [1, 2, 3])

    def test_parse(self):
        self.assertIsNone(parse(b""))
        self.assertEqual(parse(b'{"a": 1}'), {"a": 1})
        self.assertEqual(parse(b"<html>"), "<html>")


if __name__ == "__main__":
    unittest.main()
