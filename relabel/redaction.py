"""Keep secrets out of everything relabel prints, logs or stores.

    redact("Illegal header value b'Token 3f9a...'")   ->  "Illegal header value b'Token [redacted]'"
    redact("Cannot reach http://bob:pw@ls:8080/api")  ->  "Cannot reach http://[redacted]@ls:8080/api"
    url_without_userinfo("http://bob:pw@ls:8080")     ->  "http://ls:8080"

Every error path that reaches a person goes through :func:`redact` (the CLI applies it to every message), so a key
that slips into an exception's text from a library (httpx echoes illegal header values, URLs carry passwords)
never reaches the terminal.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# An Authorization header's scheme followed by its credential: 'Token 3f9a...', 'Bearer eyJ...'. Case-sensitive,
# as the header writes them, so prose ("token limit") is left alone. The credential ends at whitespace, a quote or
# an escaped newline ('\n' as two characters, as a bytes repr prints it).
_AUTH_HEADER = re.compile(r"\b(Token|Bearer)(\s+|%20)(?!\[redacted\])((?:(?!\\[nr])[^\s'\"<>,;])+)")
# userinfo in any URL: scheme://user[:password]@host
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]+@")


def redact(text: object, *secrets: str | None) -> str:
    """``text`` with credentials after Token/Bearer, URL userinfo and every one of ``secrets`` replaced."""
    out = str(text)
    for secret in secrets:
        # A secret shorter than this would blank out ordinary words; real keys are 40+ characters.
        if secret and len(secret) >= 8:
            out = out.replace(secret, REDACTED)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {REDACTED}", out)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)


def url_without_userinfo(url: str) -> str:
    """The URL without ``user:password@`` (to store, show or link; the original is used only to connect)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
