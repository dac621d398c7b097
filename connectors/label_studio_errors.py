"""Label Studio's failures as one-sentence relabel errors: transport errors, HTTP statuses, answers that are not
Label Studio's JSON (a proxy's page, a redirect) and JSON relabel cannot read.

Shared by every part of the connector (connectors/label_studio_api.py, connectors/label_studio_pull.py, ...);
it imports none of them. A ``connector`` here is anything with the server's ``url`` and the source
``project_id`` (the ``Endpoint`` protocol), so no module needs the connector's class to raise an error.
"""
from __future__ import annotations

import json
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from label_studio_sdk.core.api_error import ApiError

from relabel.errors import AuthError, ConnectorError, OutcomeUnknown
from relabel.redaction import redact, url_without_userinfo

from connectors.http import GaveUp, is_tls_error, unknown_host

API_KEY_VARIABLE = "LABEL_STUDIO_API_KEY"


class Endpoint(Protocol):
    """What an error message needs to know of the connector: where the server is and which project is read."""

    url: str
    project_id: int


class Translate:
    """Turn transport failures and SDK ApiErrors inside a block into one-sentence relabel errors."""

    def __init__(self, connector: Endpoint, what: str, project: int | None, unsure: bool = False):
        self.connector, self.what, self.project, self.unsure = connector, what, project, unsure

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        url = url_without_userinfo(self.connector.url)
        if self.unsure and isinstance(exc, httpx.TransportError) and not isinstance(
                exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, GaveUp)):
            raise OutcomeUnknown(f"The request {self.what} to Label Studio at {url} was sent but its answer was "
                                 f"lost ({type(exc).__name__}).") from None
        host = unknown_host(exc.last if isinstance(exc, GaveUp) else exc)
        if host is not None and isinstance(exc, httpx.TransportError):
            raise ConnectorError(f"Cannot resolve the host {host!r} of Label Studio's URL {url}; check the URL for "
                                 "a typo (or the network's DNS).") from None
        if isinstance(exc, GaveUp) and isinstance(exc.last, (httpx.ConnectError, httpx.ConnectTimeout)) \
                and not is_tls_error(exc.last):
            raise ConnectorError(f"Cannot reach Label Studio at {url} ({type(exc.last).__name__}, {exc}); check "
                                 "the URL and that the server is running.") from None
        if isinstance(exc, GaveUp):
            raise ConnectorError(f"Label Studio at {url} kept failing: {exc}; check the server and the network, "
                                 "then run the command again (it resumes where it stopped).") from None
        if isinstance(exc, httpx.ProxyError):
            raise ConnectorError(f"The proxy between relabel and Label Studio at {url} refused {self.what} "
                                 f"({exc}); check HTTPS_PROXY / HTTP_PROXY / NO_PROXY.") from None
        if isinstance(exc, httpx.ConnectError) and is_tls_error(exc):
            raise ConnectorError(f"The TLS connection to Label Studio at {url} failed ({tls_reason(exc)}); check "
                                 "the certificate (SSL_CERT_FILE for a private CA) or the http/https in the "
                                 "URL.") from None
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            raise ConnectorError(f"Cannot reach Label Studio at {url} ({type(exc).__name__}); check the URL and "
                                 f"that the server is running.") from None
        if isinstance(exc, httpx.TimeoutException):
            raise ConnectorError(f"Label Studio at {url} did not answer {self.what} in time; retry, or raise the "
                                 f"connector timeout for big projects.") from None
        if isinstance(exc, httpx.HTTPError):
            raise ConnectorError(f"The request {self.what} to Label Studio at {url} failed ({redact(exc)}); check the "
                                 f"URL and the server log.") from None
        if isinstance(exc, ApiError):
            body = json.dumps(exc.body, default=str) if isinstance(exc.body, (dict, list)) else str(exc.body)
            raise_for_status(self.connector, exc.status_code or 0, body, self.what, self.project)
        return False


def raise_for_status(connector: Endpoint, status: int, body: str, what: str,
                     project: int | None, retried: str = "") -> None:
    url = url_without_userinfo(connector.url)
    if status == 401:
        if getattr(connector, "key_kind", "legacy") == "legacy":
            hint = "legacy tokens may be disabled on this server, so use a personal access token."
        else:       # a personal access token (a JWT): the legacy-token advice would send the user the wrong way
            hint = ("a personal access token works on the server that made it until it is revoked (Account & "
                    "Settings → Personal Access Token).")
        raise AuthError(f"Label Studio at {url} rejected the API key (401); check {API_KEY_VARIABLE}: {hint}")
    if status == 404 and project is not None and not _json_object(body):
        # Label Studio's own 404 is JSON ({"detail": "Not found."}); an HTML or empty one comes from another web
        # server, or from Label Studio under another path than the URL's.
        path = urlsplit(url).path.rstrip("/")
        where = f" (is the path {path!r} in the URL right?)" if path else " (another web server on that port?)"
        page = "an HTML page" if body.lstrip().startswith("<") else "no JSON"
        raise ConnectorError(f"The server at {url} is not Label Studio's API: it answered {what} with 404 and "
                             f"{page}{where}; point 'url' at the Label Studio server itself.")
    if status == 403:
        raise AuthError(f"Label Studio at {url} refused {what} (403); set {API_KEY_VARIABLE} to the key of a "
                        f"user who may read and write project {project or connector.project_id}.")
    if status == 404 and project is not None:
        raise ConnectorError(f"There is no project {project} at {url}; check the project id in the project's URL.")
    if body.lstrip().startswith("<"):   # an HTML error page (a proxy's or Django's): its text says little
        short = "an HTML error page"
    else:
        short = redact(" ".join(body.split())[:200])  # a proxy may echo the request's headers back
    raise ConnectorError(f"Label Studio at {url} answered {status} to {what}{retried}: {short}; check the "
                         "server log.")


def _json_object(body: str) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (TypeError, ValueError):
        return False


def tls_reason(exc: BaseException) -> str:
    text = str(exc)
    return text.split("] ", 1)[-1].split(" (_ssl")[0] if text else type(exc).__name__


def raise_unknown_not_json(connector: Endpoint, response, what: str) -> None:
    """A write answered with something that is not Label Studio's JSON (a proxy's page): it may have landed."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    raise OutcomeUnknown(f"Label Studio at {url_without_userinfo(connector.url)} answered {what} with {kind} "
                         "instead of JSON, so whether it was carried out is unknown.")


def looks_like_json(response) -> bool:
    # Only HTML is refused up front: the export endpoint answers JSON under a download content type.
    return response.headers.get("content-type", "").split(";")[0].strip().lower() not in ("text/html",
                                                                                      "application/xhtml+xml")


def raise_not_json(connector: Endpoint, response, what: str) -> None:
    """A 2xx/3xx answer that is not Label Studio's JSON: a proxy's or SSO's login page, a redirect, a wrong URL."""
    url = url_without_userinfo(connector.url)
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    if 300 <= response.status_code < 400:
        where = redact(response.headers.get("location", "elsewhere"))
        raise ConnectorError(f"Label Studio at {url} answered {what} with a redirect ({response.status_code}) to "
                             f"{where}; a proxy or login page is in the way, or the URL is wrong: point 'url' at the "
                             "Label Studio server itself.")
    raise ConnectorError(f"Label Studio at {url} answered {what} with {kind} instead of JSON (a proxy's login page? "
                         "a wrong URL?); point 'url' at the Label Studio server itself.")


def raise_unreadable(connector: Endpoint, what: str, body) -> None:
    shown = redact(" ".join(json.dumps(body, default=str).split()))[:120]
    raise ConnectorError(f"Label Studio at {url_without_userinfo(connector.url)} answered {what} with JSON relabel "
                         f"cannot read ({shown}); check that 'url' points at a Label Studio 1.x server.")
