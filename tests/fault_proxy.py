"""A faulty HTTP proxy between relabel and the real Label Studio, for tests/test_faults.py.

Built on the standard library's threaded HTTP server (one thread per connection) and httpx for the upstream
side. Each request is matched against ``rules`` (first match wins, each with a count of how many requests it
hits) and then:

    delay        wait ``seconds``, then forward (the request is still forwarded when its client died meanwhile)
    reset        reset the client's connection (TCP RST) without forwarding
    drop         forward, let Label Studio carry it out, then reset the client's connection: the answer is lost
    status       answer ``status`` (502, 503, 504, 429 with ``retry_after``) without forwarding
    status_after forward, then answer ``status`` instead of Label Studio's answer
    html         answer 200 with an HTML login page, without forwarding
    down         refuse connections for ``seconds`` (the listening socket is closed: "server stopped")

``chaos(rate, seed)`` adds seeded random resets and 502s (half before, half after forwarding) on every request.
``on_request(event, request_no, method, path)`` is called at "received", "forwarded" and "answered": the test
SIGKILLs a relabel process from there to kill it mid-request.
"""
from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length", "content-encoding", "host"}
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>login</form></body></html>"


@dataclass
class Rule:
    """What to do to the requests matching ``method`` and the ``path`` regex (``times`` of them; -1: all)."""

    action: str
    method: str = "*"
    path: str = ".*"
    times: int = 1
    seconds: float = 0.0
    status: int = 502
    retry_after: float | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.times < 0 or self.hits < self.times) and self.method in ("*", method) \
            and re.search(self.path, path) is not None


@dataclass
class Log:
    method: str
    path: str
    outcome: str
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    """``FaultProxy(upstream).start()``; point relabel at ``proxy.url``; add rules; ``stop()``."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.log: list[Log] = []
        self.on_request: Callable[[str, int, str, str], None] | None = None
        self._chaos: tuple[float, random.Random] | None = None
        self._guard = threading.Lock()
        self._count = 0
        self._client = httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0))
        self._server: ThreadingHTTPServer | None = None
        self.port: int | None = None

    # ---- control ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._serve(self.port or 0)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add(self, action: str, **kwargs) -> Rule:
        rule = Rule(action, **kwargs)
        with self._guard:
            self.rules.append(rule)
        return rule

    def chaos(self, rate: float, seed: int) -> None:
        self._chaos = (rate, random.Random(seed))

    def clear(self) -> None:
        with self._guard:
            self.rules.clear()
            self._chaos = None
            self.on_request = None
            self.log.clear()
            self._count = 0

    def faults(self) -> list[Log]:
        return [entry for entry in self.log if entry.outcome != "ok"]

    # ---- internals -------------------------------------------------------------------------------------
    def _serve(self, port: int) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # quiet
                pass

            def do_GET(self):
                proxy._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True).start()

    def _down_for(self, seconds: float) -> None:
        port = self.port
        self.stop()
        time.sleep(seconds)
        self._serve(port)

    def _pick(self, method: str, path: str) -> tuple[int, Rule | None, str | None]:
        with self._guard:
            self._count += 1
            number = self._count
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return number, rule, None
            if self._chaos is not None:
                rate, rng = self._chaos
                if rng.random() < rate:
                    return number, None, rng.choice(["reset", "status", "drop", "status_after"])
        return number, None, None

    def _event(self, event: str, number: int, method: str, path: str) -> None:
        hook = self.on_request
        if hook is not None:
            hook(event, number, method, path)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        number, rule, chaos = self._pick(method, path)
        action = rule.action if rule is not None else chaos
        self._event("received", number, method, path)
        if action == "down":
            self._record(method, path, "down")
            _reset(h)
            threading.Thread(target=self._down_for, args=(rule.seconds,), daemon=True).start()
            return
        if action == "reset":
            self._record(method, path, "reset")
            _reset(h)
            return
        if action == "status":
            self._record(method, path, f"status {rule.status if rule else 502}")
            headers = {"Retry-After": str(rule.retry_after)} if rule and rule.retry_after is not None else {}
            _answer(h, rule.status if rule else 502, b"<html><body>Bad Gateway</body></html>", "text/html", headers)
            return
        if action == "html":
            self._record(method, path, "html")
            _answer(h, 200, LOGIN_PAGE, "text/html; charset=utf-8")
            return
        if action == "delay":
            time.sleep(rule.seconds)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream = self._client.request(method, self.upstream + path, headers=headers, content=body)
        except httpx.HTTPError:
            self._record(method, path, "upstream failed")
            _reset(h)
            return
        self._event("forwarded", number, method, path)
        if action == "drop":
            self._record(method, path, "drop")
            _reset(h)
            return
        if action == "status_after":
            self._record(method, path, "status after")
            _answer(h, rule.status if rule else 502, b"<html><body>Bad Gateway</body></html>", "text/html")
            return
        self._record(method, path, {None: "ok", "delay": "delayed"}.get(action, action))
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            _answer(h, upstream.status_code, upstream.content, None, out)
        except OSError:      # the client died meanwhile
            pass
        self._event("answered", number, method, path)

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._guard:
            self.log.append(Log(method, path, outcome))


def _answer(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None,
            headers: dict | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    if content_type:
        h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
    h.wfile.flush()
    h.close_connection = True


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), as a crashed or flaky peer does."""
    try:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()
    except OSError:
        pass
    h.close_connection = True
    h.wfile = _Sink()


class _Sink:
    """Swallows what the request handler would still write to a connection we reset."""

    closed = False

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass
