"""The retrying transport (connectors/http.py) on httpx's MockTransport: fast, no server.

The same transport against the real Label Studio behind a faulty proxy is in tests/test_faults.py.
"""
from __future__ import annotations

import httpx
import pytest

from connectors.http import GaveUp, RetryPolicy, RetryingTransport, retry_summary


class Script:
    """A server that answers from a script: each entry is an exception to raise or (status, headers)."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.method)
        step = self.steps.pop(0) if self.steps else (200, {})
        if isinstance(step, Exception):
            raise step
        status, headers = step
        return httpx.Response(status, headers=headers, json={"ok": status})


def client(script: Script, slept: list, **policy) -> httpx.Client:
    transport = RetryingTransport(httpx.MockTransport(script), RetryPolicy(**policy), sleep=slept.append)
    return httpx.Client(transport=transport, base_url="http://ls.test")


RESET = httpx.ReadError("Connection reset by peer")
REFUSED = httpx.ConnectError("[Errno 111] Connection refused")


@pytest.mark.parametrize("failure", [RESET, httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("cut"),
                                     (502, {}), (503, {}), (504, {}), (429, {})])
def test_idempotent_requests_are_retried_until_they_succeed(failure):
    script, slept = Script(failure, failure), []
    for method in ("GET", "PATCH", "DELETE"):
        script.steps = [failure, failure]
        assert client(script, slept).request(method, "/api/x").json() == {"ok": 200}
    assert script.calls == ["GET"] * 3 + ["PATCH"] * 3 + ["DELETE"] * 3
    assert len(slept) == 6 and all(s > 0 for s in slept)


def test_backoff_grows_with_jitter_and_retry_after_is_honoured():
    script, slept = Script(RESET, RESET, RESET, RESET), []
    client(script, slept, initial_wait=1.0, max_wait=100, jitter=0.5).get("/api/x")
    assert [round(s) for s in slept] == [1, 2, 4, 8] or all(b > a for a, b in zip(slept, slept[1:]))
    assert all(2 ** n <= s <= 2 ** n + 0.5 for n, s in enumerate(slept))
    script, slept = Script((429, {"Retry-After": "3"})), []
    assert client(script, slept, initial_wait=0.1, jitter=0).get("/api/x").status_code == 200
    assert slept == [3.0]


def test_a_post_is_retried_only_when_it_was_never_sent():
    script, slept = Script(REFUSED, REFUSED), []
    assert client(script, slept).post("/api/import", json=[1]).status_code == 200
    assert script.calls == ["POST"] * 3
    for unknown in (RESET, httpx.ReadTimeout("timed out"), (502, {}), (503, {})):
        script, slept = Script(unknown), []
        if isinstance(unknown, Exception):
            with pytest.raises(type(unknown)):
                client(script, slept).post("/api/import", json=[1])
        else:
            assert client(script, slept).post("/api/import", json=[1]).status_code == unknown[0]
        assert script.calls == ["POST"] and slept == []


def test_giving_up_is_one_line_with_the_count():
    script, slept = Script(*[RESET] * 10), []
    with pytest.raises(GaveUp) as err:
        client(script, slept, attempts=4).get("/api/tasks/")
    assert str(err.value) == ("GET /api/tasks/ failed 4 times in 0 s, last with ReadError (Connection reset by "
                              "peer)")
    assert isinstance(err.value.last, httpx.ReadError) and len(script.calls) == 4
    script, slept = Script(*[(503, {})] * 10), []
    response = client(script, slept, attempts=3).get("/api/tasks/")
    assert response.status_code == 503 and retry_summary(response) == " after 3 attempts in 0 s"


def test_the_deadline_bounds_the_waiting():
    script, slept = Script(*[RESET] * 50), []
    with pytest.raises(httpx.ReadError):       # one try, no retry: the error itself
        client(script, slept, attempts=50, deadline=0.0).get("/api/x")
    assert len(script.calls) == 1 and slept == []


def test_a_refusing_server_fails_within_the_connect_deadline():
    import time
    script = Script(*[REFUSED] * 100)
    started = time.monotonic()
    transport = RetryingTransport(httpx.MockTransport(script), RetryPolicy(initial_wait=0.05, max_wait=0.05,
                                                                           jitter=0, connect_deadline=0.3,
                                                                           attempts=100))
    with pytest.raises(GaveUp):
        httpx.Client(transport=transport).get("http://ls.test/api/x")
    assert 0.25 <= time.monotonic() - started < 2 and 3 <= len(script.calls) < 20


# ---- the connector's one-line errors for what is not Label Studio's JSON ---------------------------------------
class _Stub:
    """A local plain-HTTP server answering every request with one fixed response."""

    def __init__(self, status: int, body: bytes, headers: dict):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("scheme,status,body,headers,needle", [
    ("http", 200, b"<html><title>Sign in</title></html>", {"Content-Type": "text/html"},
     "with text/html instead of JSON"),
    ("http", 302, b"", {"Location": "http://sso.example/login?next=/api"},
     "with a redirect (302) to http://sso.example/login?next=/api"),
    ("https", 200, b"{}", {"Content-Type": "application/json"}, "The TLS connection to Label Studio at https://"),
])
def test_a_server_that_is_not_label_studios_api_is_one_clear_line(scheme, status, body, headers, needle):
    from connectors.label_studio import LabelStudioConnector
    from relabel.errors import ConnectorError

    stub = _Stub(status, body, headers)
    try:
        connector = LabelStudioConnector(f"{scheme}://127.0.0.1:{stub.port}", "k" * 40, 3)
        with pytest.raises(ConnectorError) as err:
            connector.describe()
    finally:
        stub.close()
    message = str(err.value)
    assert needle in message and "\n" not in message and "k" * 40 not in message
