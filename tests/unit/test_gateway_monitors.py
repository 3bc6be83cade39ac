"""/rates.xml and /rates.json in the gateway (gateway/api/monitors.py; docs/monitors.md, "Caching"): answered from
the worker's memory, orders asked only when the check is due and the document fetched only when its version moved,
conditional GETs answered 304, the last document served while orders does not answer. Orders is a stub here."""
import gzip

import pytest

from gateway.api import monitors

XML = '<?xml version="1.0" encoding="UTF-8"?>\n<rates/>\n'


class OrdersStub:
    def __init__(self):
        self.version, self.xml, self.calls, self.down = 1, XML, [], False

    def monitor_export_document(self, known_version):
        self.calls.append(known_version)
        if self.down:
            raise TimeoutError("orders does not answer")
        if known_version == self.version:
            return {"version": self.version, "rendered_at": "2026-12-03T12:00:0%d+00:00" % self.version,
                    "unchanged": True}
        return {"version": self.version, "rendered_at": "2026-12-03T12:00:0%d+00:00" % self.version,
                "unchanged": False, "items": 0, "maintenance": False, "xml": self.xml,
                "json": '{"rates":[]}'}


@pytest.fixture
def setup(monkeypatch):
    from gateway import create_app
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "SECRET_KEY": "x" * 32,
                      "MONITOR_EXPORT_CHECK_SECONDS": 3600})
    orders = OrdersStub()
    monkeypatch.setattr(monitors.rpc, "service", lambda name: orders)
    return app, app.test_client(), orders


def test_served_from_memory_with_validators(setup):
    app, client, orders = setup
    first = client.get("/rates.xml")
    assert first.status_code == 200 and first.data.decode() == XML
    assert first.mimetype == "application/xml" and first.headers["Cache-Control"] == "no-cache"
    assert first.headers["ETag"] == '"mx-1-x"'
    assert first.headers["Last-Modified"] == "Thu, 03 Dec 2026 12:00:01 GMT"
    for _ in range(5):
        assert client.get("/rates.xml").status_code == 200
    assert client.get("/rates.json").json == {"rates": []}
    assert orders.calls == [None]          # one question to orders for all of them: the check is not due


def test_conditional_gets_are_answered_304_without_a_body(setup):
    app, client, orders = setup
    etag = client.get("/rates.xml").headers["ETag"]
    again = client.get("/rates.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    since = client.get("/rates.xml", headers={"If-Modified-Since": "Thu, 03 Dec 2026 12:00:01 GMT"})
    assert since.status_code == 304
    assert client.get("/rates.xml", headers={"If-None-Match": '"mx-0-x"'}).status_code == 200
    assert client.get("/rates.json", headers={"If-None-Match": etag}).status_code == 200   # the XML's tag


def test_a_new_version_is_fetched_when_the_check_is_due_and_only_then(setup):
    app, client, orders = setup
    etag = client.get("/rates.xml").headers["ETag"]
    orders.version, orders.xml = 2, XML.replace("<rates/>", "<rates><!-- 2 --></rates>")
    assert client.get("/rates.xml").data.decode() == XML                # not due: the document in memory
    app.config["MONITOR_EXPORT_CHECK_SECONDS"] = 0
    changed = client.get("/rates.xml", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"<!-- 2 -->" in changed.data and changed.headers["ETag"] == '"mx-2-x"'
    assert client.get("/rates.xml").status_code == 200
    assert orders.calls == [None, 1, 2]     # the version known is sent: an unchanged file does not travel again


def test_the_last_document_is_served_while_orders_does_not_answer(setup):
    app, client, orders = setup
    client.get("/rates.xml")
    app.config["MONITOR_EXPORT_CHECK_SECONDS"] = 0
    orders.down = True
    answer = client.get("/rates.xml")
    assert answer.status_code == 200 and answer.data.decode() == XML


def test_clients_that_accept_gzip_get_it_compressed_once_per_version(setup):
    app, client, orders = setup
    plain = client.get("/rates.xml")
    packed = client.get("/rates.xml", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.data) == plain.data
    assert packed.headers["Vary"] == "Accept-Encoding" and "Content-Encoding" not in plain.headers
    assert packed.headers["ETag"] == '"mx-1-x-gz"' != plain.headers["ETag"]
    assert client.get("/rates.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": '"mx-1-x-gz"'}) \
        .status_code == 304


@pytest.mark.parametrize("path, headers", [
    ("/rates.xml", {}), ("/rates.json", {}), ("/rates.xml", {"Accept-Encoding": "gzip"}),
    ("/rates.xml", {"If-None-Match": '"mx-1-x"'}), ("/rates.xml", {"If-None-Match": '"mx-0-x", "mx-1-x"'}),
    ("/rates.xml", {"If-Modified-Since": "Thu, 03 Dec 2026 12:00:01 GMT"})])
def test_the_fast_path_answers_as_the_flask_view_does(setup, path, headers):
    """Between version checks the WSGI fast path answers without Flask; when a check is due Flask does. A client
    cannot tell them apart: same status, headers (security headers included) and body."""
    app, client, orders = setup
    client.get(path)                                     # holds version 1; the next check is not due
    fast = client.get(path, headers=headers)
    app.config["MONITOR_EXPORT_CHECK_SECONDS"] = 0       # due: through Flask (orders says unchanged)
    slow = client.get(path, headers=headers)
    assert orders.calls == [None, 1]
    assert (fast.status_code, fast.data) == (slow.status_code, slow.data)
    assert dict(fast.headers) == dict(slow.headers)
    head = client.head(path, headers=headers)
    assert head.data == b"" and head.status_code == fast.status_code


def test_the_fast_path_leaves_every_other_request_to_flask(setup):
    app, client, orders = setup
    client.get("/rates.xml")
    assert client.post("/rates.xml").status_code in (400, 405)    # Flask's answer (CSRF first, then the method)
    assert client.get("/rates.xml/").status_code == 404
    assert client.get("/healthz").status_code == 200
