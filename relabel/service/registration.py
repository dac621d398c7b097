"""`relabel serve --register` / `--unregister`: connect the project to the service through Label Studio's API.

Register creates, or finds and brings up to date, three things, so running it twice creates nothing new:
  - a webhook to <service>/webhook on the source project and on the review project, for the four actions the
    worker acts on, carrying the shared secret header;
  - the ML backend connection of the source project to <service>, with basic auth;
  - "retrieve predictions automatically" on the source project, so the Data Manager shows relabel's consensus and
    quality per task (sorting by quality), and "use predictions to prelabel tasks" (show_collab_predictions)
    OFF, so annotators open their tasks empty: an annotator shown relabel's label anchors on it, and answers that
    are not independent break the assumption every consensus method here rests on (and relabel's own estimate of
    each annotator's quality). ``[serve] prefill_annotators = true`` turns pre-filling on, at that cost.
The webhooks are created before the ML backend on purpose: Label Studio adds a webhook to <url>/webhook for
every new ML backend, for all actions and without our header, unless one to that URL already exists.
Unregister removes what register made (found by URL) and restores the project settings.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from relabel.loop.store import Store
from relabel.service.webhooks import ACTIONS, SECRET_HEADER

log = logging.getLogger("relabel.serve")

ML_BACKEND_TITLE = "relabel"
# The store remembers the project's own settings, so --unregister puts them back as they were.
_PREVIOUS_SETTING = "serve_previous_evaluate_predictions_automatically"
_PREVIOUS_PREFILL = "serve_previous_show_collab_predictions"


@dataclass(frozen=True)
class Registration:
    """What register or unregister did."""

    webhooks_created: int = 0
    webhooks_updated: int = 0
    webhooks_kept: int = 0
    webhooks_deleted: int = 0
    ml_backend: str = ""            # "created", "updated", "kept", "deleted" or "none"
    projects: tuple[int, ...] = ()


def register(connector, store: Store, *, service_url: str, username: str, password: str, secret: str,
             review_mode: str = "project", show_suggestion: bool = True,
             prefill_annotators: bool = False) -> Registration:
    """Create or update the webhooks and the ML backend connection (idempotent)."""
    service_url = service_url.rstrip("/")
    source = connector.project_id
    projects = [source]
    if review_mode == "project":
        # Made now rather than at the first push, so its answers reach the service from the first round on.
        projects.append(connector.review_project_id(create=True, show_suggestion=show_suggestion))
    counts = {"created": 0, "updated": 0, "kept": 0, "deleted": 0}
    # Before the ML backend exists: Label Studio makes a new backend the project's model_version (the set of
    # predictions annotators are pre-filled with) only while show_collab_predictions is on.
    _ensure_prefill(connector, store, source, prefill_annotators)
    for project in projects:
        for outcome in _ensure_webhook(connector, project, f"{service_url}/webhook", secret):
            counts[outcome] += 1
    backend = _ensure_ml_backend(connector, source, service_url, username, password)
    _ensure_predictions_on_open(connector, store, source)
    _ensure_prefill(connector, store, source, prefill_annotators)
    result = Registration(webhooks_created=counts["created"], webhooks_updated=counts["updated"],
                          webhooks_kept=counts["kept"], webhooks_deleted=counts["deleted"], ml_backend=backend,
                          projects=tuple(projects))
    store.log_event("register", f"service {service_url}: webhooks {counts}, ML backend {backend}")
    return result


def unregister(connector, store: Store, *, service_url: str) -> Registration:
    """Remove the webhooks and the ML backend connection register made; restore the project setting."""
    service_url = service_url.rstrip("/")
    source = connector.project_id
    projects = [source]
    review = connector.review_project_id(create=False)
    if review is not None:
        projects.append(review)
    deleted = 0
    for project in projects:
        for hook in _webhooks(connector, project, f"{service_url}/webhook"):
            connector._request("DELETE", f"api/webhooks/{hook['id']}/", write=True)
            deleted += 1
    backends = _ml_backends(connector, source, service_url)
    for backend in backends:
        connector._request("DELETE", f"api/ml/{backend['id']}", write=True)
    previous = store.get_meta(_PREVIOUS_SETTING)
    if previous is not None:
        connector._request("PATCH", f"api/projects/{source}", write=True, project=source,
                           json_body={"evaluate_predictions_automatically": previous == "true"})
        store.set_meta(_PREVIOUS_SETTING, None)
    previous_prefill = store.get_meta(_PREVIOUS_PREFILL)
    if previous_prefill is not None:
        connector._request("PATCH", f"api/projects/{source}", write=True, project=source,
                           json_body={"show_collab_predictions": previous_prefill == "true"})
        store.set_meta(_PREVIOUS_PREFILL, None)
    store.log_event("unregister", f"service {service_url}: {deleted} webhooks and {len(backends)} ML backends removed")
    return Registration(webhooks_deleted=deleted, ml_backend="deleted" if backends else "none",
                        projects=tuple(projects))


def _webhooks(connector, project: int, url: str) -> list[dict]:
    hooks = connector._request("GET", "api/webhooks/", params={"project": project}) or []
    # Organisation-wide webhooks (project None) are listed too; only this project's are ours to touch.
    return [h for h in hooks if h.get("url") == url and h.get("project") == project]


def _ensure_webhook(connector, project: int, url: str, secret: str) -> list[str]:
    wanted = {"url": url, "project": project, "send_payload": True, "send_for_all_actions": False,
              "actions": list(ACTIONS), "headers": {SECRET_HEADER: secret}, "is_active": True}
    hooks = _webhooks(connector, project, url)
    if not hooks:
        connector._request("POST", "api/webhooks/", write=True, json_body=wanted)
        return ["created"]
    outcomes = []
    first, extra = hooks[0], hooks[1:]
    stale = (first.get("headers") != wanted["headers"] or sorted(first.get("actions") or []) != sorted(ACTIONS)
             or first.get("send_for_all_actions") or not first.get("send_payload") or not first.get("is_active"))
    if stale:
        # E.g. the one Label Studio made for an ML backend added by hand: all actions, no secret.
        connector._request("PATCH", f"api/webhooks/{first['id']}/", write=True,
                           json_body={k: v for k, v in wanted.items() if k != "project"})
        outcomes.append("updated")
    else:
        outcomes.append("kept")
    for hook in extra:      # two webhooks to the same URL would deliver every event twice
        connector._request("DELETE", f"api/webhooks/{hook['id']}/", write=True)
        outcomes.append("deleted")
    return outcomes


def _ml_backends(connector, project: int, url: str) -> list[dict]:
    backends = connector._request("GET", "api/ml/", params={"project": project}) or []
    return [b for b in backends if (b.get("url") or "").rstrip("/") == url]


def _ensure_ml_backend(connector, project: int, url: str, username: str, password: str) -> str:
    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": username, "basic_auth_pass": password}
    backends = _ml_backends(connector, project, url)
    if not backends:
        # Label Studio calls /health and /setup of the service before it answers this request.
        connector._request("POST", "api/ml/", write=True, json_body={
            "url": url, "project": project, "title": ML_BACKEND_TITLE, "is_interactive": False,
            "description": "relabel: consensus labels and quality from the latest round", **auth})
        return "created"
    backend = backends[0]
    for extra in backends[1:]:
        connector._request("DELETE", f"api/ml/{extra['id']}", write=True)
    if backend.get("auth_method") == "BASIC_AUTH" and backend.get("basic_auth_user") == username:
        # The password is write-only in Label Studio's API: send it again in case it changed.
        connector._request("PATCH", f"api/ml/{backend['id']}", write=True,
                           json_body={"url": url, "project": project, **auth})
        return "kept"
    connector._request("PATCH", f"api/ml/{backend['id']}", write=True, json_body={"url": url, "project": project, **auth})
    return "updated"


def _ensure_predictions_on_open(connector, store: Store, project: int) -> None:
    body = connector._request("GET", f"api/projects/{project}", project=project)
    current = bool(body.get("evaluate_predictions_automatically"))
    if store.get_meta(_PREVIOUS_SETTING) is None:
        store.set_meta(_PREVIOUS_SETTING, "true" if current else "false")
    if not current:
        connector._request("PATCH", f"api/projects/{project}", write=True, project=project,
                           json_body={"evaluate_predictions_automatically": True})


def _ensure_prefill(connector, store: Store, project: int, prefill: bool) -> None:
    """show_collab_predictions ("Use predictions to prelabel tasks") as ``[serve] prefill_annotators`` says.

    Label Studio clears the project's model_version whenever show_collab_predictions is turned off; it is put
    back, so the Data Manager's prediction score (which counts the project's model_version only) keeps sorting."""
    body = connector._request("GET", f"api/projects/{project}", project=project)
    current = bool(body.get("show_collab_predictions"))
    if store.get_meta(_PREVIOUS_PREFILL) is None:
        store.set_meta(_PREVIOUS_PREFILL, "true" if current else "false")
    if current == prefill:
        return
    connector._request("PATCH", f"api/projects/{project}", write=True, project=project,
                       json_body={"show_collab_predictions": prefill})
    version = body.get("model_version")
    if not prefill and version:
        connector._request("PATCH", f"api/projects/{project}", write=True, project=project,
                           json_body={"model_version": version})
