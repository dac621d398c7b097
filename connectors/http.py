"""The HTTP client connectors talk through: retries for requests that are safe to repeat, and nothing else.

``retrying_client()`` is an ``httpx.Client`` whose transports (the direct one and any proxy mounts from the
environment) are wrapped in ``RetryingTransport``. It retries, with exponential backoff and jitter (tenacity)
under a total deadline:

- idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, and PATCH — every PATCH relabel sends sets absolute
  values, so sending it twice is the same as once) on connection errors, resets, timeouts, a response cut
  short, and the answers 502, 503, 504 and 429 (honouring ``Retry-After``);
- any request, POST included, on a failure to connect: nothing was sent, so nothing can have landed.

A POST whose outcome is unknown (a reset or a 502 after it was sent) is never retried here; the caller re-checks
what landed and sends only what is missing (connectors/label_studio.py, push). When retrying gives up, the error
says so in one line: ``GaveUp`` for transport failures, and ``retry_summary(response)`` for an answer that stayed
an error.
"""
from __future__ import annotations

import email.utils
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity import wait_exponential_jitter

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures where the request may or may not have reached the server: retried for idempotent requests only.
_UNCERTAIN = (httpx.ReadError, httpx.WriteError, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout,
              httpx.RemoteProtocolError)
# Failures before anything was sent: safe to retry for every method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    The defaults ride out a server restart (Label Studio's dev server is back in 4-7 s) or a flaky proxy: 8
    attempts spaced 0.5, 1, 2, 4, 8, 8, 8 s (± jitter), under a 60 s deadline for one request. A server that
    says how long to wait (Retry-After) is believed up to ``max_wait``.
    """

    attempts: int = 8
    deadline: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5
    # A server that refuses connections is down or the URL is wrong: give it the time a restart takes, not a
    # minute (a mistyped --url must fail fast).
    connect_deadline: float = 10.0


class GaveUp(httpx.TransportError):
    """Retrying an idempotent request stopped: the message is the one-line summary; ``last`` what failed last."""

    def __init__(self, message: str, *, request: httpx.Request, last: BaseException | None = None):
        super().__init__(message, request=request)
        self.last = last


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(response.status_code)
        self.response = response


class RetryingTransport(httpx.BaseTransport):
    """An httpx transport that retries what is safe to retry (see the module docstring)."""

    def __init__(self, wrapped: httpx.BaseTransport, policy: RetryPolicy | None = None, *, sleep=time.sleep):
        self.wrapped = wrapped
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        idempotent = request.method.upper() in IDEMPOTENT_METHODS
        policy = self.policy
        started = time.monotonic()
        backoff = wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter)
        within_deadline = stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline)

        def stop(state: RetryCallState) -> bool:
            refused = isinstance(state.outcome.exception(), _NOT_SENT)
            return within_deadline(state) or (refused and time.monotonic() - started >= policy.connect_deadline)

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, _NOT_SENT):
                # A certificate does not get better by asking again, and a host name the resolver does not know
                # is a typo far more often than a DNS outage: both fail at once (an unknown host in < 3 s).
                return not is_tls_error(exc) and unknown_host(exc) is None
            return idempotent and isinstance(exc, (_UNCERTAIN, _RetryableStatus))

        def wait(state: RetryCallState) -> float:
            seconds = backoff(state)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableStatus):
                told = _retry_after(exc.response)
                if told is not None:
                    seconds = min(max(told, seconds), policy.max_wait)
            left = (policy.connect_deadline if isinstance(exc, _NOT_SENT) else policy.deadline) \
                - (time.monotonic() - started)
            return max(0.0, min(seconds, left))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            if isinstance(exc, _RetryableStatus):
                exc.response.close()
            log.info("Retrying %s %s after %s (attempt %d)", request.method, request.url.path, _what(exc),
                     state.attempt_number + 1)

        def give_up(state: RetryCallState):
            exc = state.outcome.exception()
            elapsed = time.monotonic() - started
            if isinstance(exc, _RetryableStatus):     # the server's last answer goes back to the caller
                exc.response.extensions["relabel_attempts"] = (state.attempt_number, elapsed)
                return exc.response
            if state.attempt_number > 1:
                raise GaveUp(f"{request.method} {request.url.path} failed {state.attempt_number} times in "
                             f"{elapsed:.0f} s, last with {_what(exc)}", request=request, last=exc) from exc
            raise exc

        retrying = Retrying(stop=stop,
                            wait=wait, retry=retry_if_exception(retryable), before_sleep=before_sleep,
                            retry_error_callback=give_up, sleep=self._sleep)
        return retrying(self._send, request, idempotent)

    def _send(self, request: httpx.Request, idempotent: bool) -> httpx.Response:
        response = self.wrapped.handle_request(request)
        if idempotent:
            if response.status_code in RETRY_STATUSES:
                response.read()
                raise _RetryableStatus(response)
            # Read the body here, so a connection reset half way through it is retried like any other.
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response

    def close(self) -> None:
        self.wrapped.close()


def retrying_client(*, timeout: float, policy: RetryPolicy | None = None, **client_kwargs) -> httpx.Client:
    """An httpx.Client without keep-alive (see docs/LABEL_STUDIO.md) whose every transport retries.

    Proxies from the environment (HTTPS_PROXY, ...) stay in force: their transports are wrapped too.
    """
    client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0), **client_kwargs)
    client._transport = RetryingTransport(client._transport, policy)
    client._mounts = {pattern: (RetryingTransport(t, policy) if t is not None else None)
                      for pattern, t in client._mounts.items()}
    return client


def retry_summary(response: httpx.Response) -> str:
    """' after 8 attempts in 31 s' when the transport retried this answer, else ''."""
    tried = response.extensions.get("relabel_attempts")
    if not tried or tried[0] <= 1:
        return ""
    return f" after {tried[0]} attempts in {tried[1]:.0f} s"


def is_tls_error(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is a TLS failure: a bad certificate, a plain-HTTP server on https."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError) or "SSL" in type(exc).__name__ or "CERTIFICATE_VERIFY" in str(exc).upper():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def unknown_host(exc: BaseException | None) -> str | None:
    """The host name when ``exc`` (or what caused it) is a failure to resolve it (socket.gaierror), else None."""
    import socket

    seen, request_host = 0, None
    while exc is not None and seen < 10:
        if isinstance(exc, httpx.RequestError) and request_host is None:
            try:
                request_host = exc.request.url.host
            except RuntimeError:          # an error built without its request
                pass
        if isinstance(exc, socket.gaierror) or "Name or service not known" in str(exc) \
                or "nodename nor servname" in str(exc) or "No address associated" in str(exc) \
                or "Temporary failure in name resolution" in str(exc):
            return request_host or "?"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _what(exc: BaseException | None) -> str:
    if isinstance(exc, _RetryableStatus):
        return f"HTTP {exc.response.status_code}"
    detail = str(exc).strip() if exc is not None else ""
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__
