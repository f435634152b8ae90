"""Unit tests of app.py in plain CPython, without a host: the host's imports
(`http.send`, `auth.verify_hmac_sha256`) are replaced by fakes.

Run: python3 -m unittest   (componentize-py on PATH: it writes the bindings)
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# A project made by `spoke new` carries its WIT in ./wit; the example in the
# Spoke repository reads the repository's.
WIT = next(p for p in (os.path.join(HERE, "wit"), os.path.join(HERE, "../../wit/v0.1.0")) if os.path.isdir(p))
BINDINGS = tempfile.mkdtemp(prefix="spoke-bindings-")
subprocess.run(["componentize-py", "-d", WIT, "-w", "connector", "bindings", BINDINGS], check=True)
sys.path[:0] = [BINDINGS, HERE]

import app  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import http  # noqa: E402
from wit_world.imports.events import Received  # noqa: E402
from wit_world.imports.types import ErrorKind, Method  # noqa: E402

SECRET = b"test-secret"


class Vendor:
    """Answers every request with `status` and `body`, and records it."""

    def __init__(self, status=200, body=b"{}", headers=()):
        self.status, self.body, self.headers, self.sent = status, body, list(headers), []

    def send(self, request):
        self.sent.append(request)
        return http.Response(status=self.status, headers=self.headers, body=self.body)


def verify(field, message, signature, encoding):
    assert field == "webhook_secret"
    return hmac.compare_digest(hmac.new(SECRET, message, hashlib.sha256).hexdigest(), signature)


def failing(call):
    try:
        call()
    except Err as e:
        return e.value
    raise AssertionError("expected an Err")


class ConnectorTest(unittest.TestCase):
    def setUp(self):
        self.world = app.WitWorld()
        app.auth.verify_hmac_sha256 = verify
        app.log.log = lambda level, message: None

    def vendor(self, **kw):
        v = Vendor(**kw)
        app.http.send = v.send
        return v

    def test_describe_lists_each_operation_with_its_schema(self):
        m = self.world.describe()
        self.assertEqual(m.name, app.NAME)
        self.assertEqual({o.name for o in m.operations}, {"list_items", "create_item"})
        for o in m.operations:
            json.loads(o.input_schema)

    def test_list_items_sends_the_filter_as_query(self):
        v = self.vendor(body=b'{"items": [{"id": 1}]}')
        self.assertEqual(json.loads(self.world.invoke("list_items", '{"status": "open"}')), {"items": [{"id": 1}]})
        self.assertEqual((v.sent[0].method, v.sent[0].path, v.sent[0].query, v.sent[0].auth), (Method.GET, "/items", [("status", "open")], ["api-key"]))

    def test_bad_input_is_refused_before_anything_is_sent(self):
        v = self.vendor()
        e = failing(lambda: self.world.invoke("create_item", "{}"))
        self.assertEqual((e.kind, e.field), (ErrorKind.INVALID_INPUT, "name"))
        e = failing(lambda: self.world.invoke("list_items", '{"status": "lost"}'))
        self.assertIn('"open"', e.message)
        self.assertEqual(v.sent, [])

    def test_vendor_errors_keep_status_and_message(self):
        self.vendor(status=429, body=b'{"error": "slow down"}', headers=[("retry-after", "3")])
        e = failing(lambda: self.world.invoke("create_item", '{"name": "x"}'))
        self.assertEqual((e.kind, e.status, e.retry_after_ms), (ErrorKind.RATE_LIMITED, 429, 3000))
        self.assertIn("slow down", e.message)

    def test_webhook_is_verified_then_normalized(self):
        body = b'{"id": "evt-1", "item": {"id": 7, "name": "x"}}'
        good = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        events = self.world.handle_webhook(Received(method="POST", path="", query="", headers=[("x-signature", good)], body=body))
        self.assertEqual((events[0].id, events[0].topic, events[0].subject), ("evt-1", "ITEM_CHANGED", "7"))
        e = failing(lambda: self.world.handle_webhook(Received(method="POST", path="", query="", headers=[("x-signature", "00")], body=body)))
        self.assertEqual(e.kind, ErrorKind.UNAUTHORIZED)


if __name__ == "__main__":
    unittest.main()
