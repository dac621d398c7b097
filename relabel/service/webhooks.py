"""Webhooks from Label Studio, and the two checks every request passes: the webhook secret and basic auth.

Label Studio posts ``{"action": "ANNOTATION_CREATED", "project": {...}, "annotation": {...}, ...}`` once, with a
1 s timeout and no retry, carrying the headers the webhook was registered with. The payload holds the project's
secrets (``token``, ``task_data_password``): nothing here ever logs it, only the action and the project id.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

# The header --register puts on every webhook it creates.
SECRET_HEADER = "X-Relabel-Secret"
# What changes the store: annotations and tasks appearing, changing or going. Everything else is acknowledged.
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_DELETED")


@dataclass(frozen=True)
class Event:
    """A webhook reduced to what the worker needs: what happened, and in which project."""

    action: str
    project: int | None


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the time a wrong secret takes tells nothing about the right one."""
    return hmac.compare_digest((given or "").encode(), expected.encode())


def basic_auth_matches(header: str | None, username: str, password: str) -> bool:
    """Whether an ``Authorization: Basic ...`` header carries these credentials (constant time for both parts)."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, given = decoded.partition(":")
    # Both comparisons always run: no early exit that would time the username apart from the password.
    ok_user = hmac.compare_digest(user.encode(), username.encode())
    ok_password = hmac.compare_digest(given.encode(), password.encode())
    return bool(sep) and ok_user and ok_password


def event_of(payload: dict) -> Event | None:
    """The event of a webhook payload, or None for an action relabel does not act on."""
    action = payload.get("action")
    if action not in ACTIONS:
        return None
    project = payload.get("project")
    project_id = project.get("id") if isinstance(project, dict) else project
    return Event(action=action, project=int(project_id) if isinstance(project_id, int) else None)
