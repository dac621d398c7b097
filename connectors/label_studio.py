"""Label Studio connector: pull annotations, push review tasks, collect reviewers' answers.

Works with Label Studio Community and Enterprise through label-studio-sdk 2.x, with a legacy token or a personal
access token (JWT refresh token; the SDK exchanges it for short-lived access tokens itself). The API key is
given by the caller and never stored or logged.

Why it looks the way it does (see docs/LABEL_STUDIO.md):
- HTTP keep-alive is off: the Django dev server stalls ~40 ms on every kept-alive request, which dominates
  when a push or a collect makes many small calls.
- Retries live in one place, the HTTP transport (connectors/http.py): idempotent requests are retried on
  resets, timeouts, 502/503/504 and 429; a POST only when it never left. The SDK's own retries are off for
  every request, so nothing is retried twice over and a POST whose outcome is unknown is never blindly re-sent.
  Every write is instead idempotent at our level: before importing, and again after any error, the target is
  listed for what a previous (possibly killed, possibly still in flight) push already created, and only what
  is missing is sent (see ``_push_project``).
- Reads go through the SDK's authenticated HTTP client but are decoded as plain JSON: a pull of 10,000 tasks
  would otherwise build 40,000 pydantic objects only to read five fields of each.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Callable, Iterable, Iterator

import httpx
from label_studio_sdk import LabelStudio

from relabel import progress
from relabel.config import checked_api_key, label_studio_url
from relabel.errors import AuthError, ConfigError, ConnectorError, InputError, OutcomeUnknown, preview
from relabel.redaction import url_without_userinfo

from connectors import label_studio_pull
from connectors.http import IDEMPOTENT_METHODS, retry_summary, retrying_client
from connectors.label_config import LabelConfig, parse_label_config
from connectors.label_studio_common import (REVIEW_MARKER, advancing, choice_of, choice_result, model_version,
                                            normalise_time, review_of, round_prediction, seconds, user_id)
from connectors.label_studio_errors import (API_KEY_VARIABLE, Translate, looks_like_json, raise_for_status,
                                            raise_not_json, raise_unknown_not_json, raise_unreadable)
from connectors.records import AnnotationRecord, ProjectInfo, Pull, PushedTask, ReviewAnswer, ReviewRequest
from connectors.review_config import panel_data, review_label_config

log = logging.getLogger(__name__)

MODES = ("project", "in_place")
# Tasks per page when listing. Larger pages mean fewer requests; 1,000 keeps one response at a few MB.
PAGE_SIZE = 1000
# The task data field `relabel writeback` fills with an item's final label (see relabel/loop/writeback.py).
FINAL_FIELD = "relabel_final"
# Task data keys relabel writes start with this; a review task never copies the item's own relabel_* fields.
OWN_PREFIX = "relabel_"
NO_RETRY = {"max_retries": 0}
DEFAULT_TIMEOUT = 300.0
# After a write whose outcome is unknown, what is in Label Studio is listed until it stops changing and the write
# is at least SETTLE_SECONDS old: a request held up by a proxy or a busy server lands within a few seconds of
# being sent or not at all (Label Studio imports inside the request, in one transaction). Looks are
# SETTLE_POLL_SECONDS apart; after SETTLE_MAX_SECONDS of constant change we go on (and duplicates are removed at
# the next push).
SETTLE_SECONDS = 5.0
SETTLE_POLL_SECONDS = 0.5
SETTLE_MAX_SECONDS = 60.0
# A write whose outcome stays unknown is re-checked and re-sent (only what is missing) this many times in all.
WRITE_ATTEMPTS = 6


def view_title(round_number: int) -> str:
    return f"relabel round {round_number}"


class LabelStudioConnector:
    """One Label Studio project, seen through the Connector protocol of connectors/records.py.

    ``after_import`` is a fault-injection hook for tests: when set, it is called right after a push's import
    request returned and before anything else, so a test can simulate a process killed at that moment.
    """

    def __init__(self, url: str, api_key: str, project_id: int, *, label_tag: str | None = None,
                 text_field: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 httpx_client: httpx.Client | None = None, after_import: Callable[[], None] | None = None):
        url = label_studio_url(url)
        if not api_key:
            raise AuthError(f"No Label Studio API key was given; set {API_KEY_VARIABLE} to a personal access token "
                            f"or legacy token from Account & Settings.")
        api_key = checked_api_key(api_key, "The API key given to the connector")
        if not isinstance(project_id, int) or isinstance(project_id, bool) or project_id < 1:
            raise ConfigError(f"The 'project_id' setting must be a positive integer. Got {project_id!r}.")
        self.url = url.rstrip("/")
        self.project_id = project_id
        self.after_import = after_import
        self._label_tag = label_tag
        self._text_field = text_field
        self._http = httpx_client or retrying_client(timeout=timeout)
        with self._translate("connect"):
            self.client = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=self._http)
        self._raw = self.client._client_wrapper.httpx_client  # the SDK's authenticated client (JWT refresh included)
        self._config: LabelConfig | None = None
        self._project: dict | None = None
        self._users: dict[int, str] | None = None

    def __repr__(self) -> str:  # never show the key
        return f"LabelStudioConnector(url={self.url!r}, project_id={self.project_id})"

    # ----------------------------------------------------------------------------------------------- plumbing
    def _translate(self, what: str, project: int | None = None, unsure: bool = False):
        return Translate(self, what, project, unsure)

    def _request(self, method: str, path: str, *, params: dict | None = None, json_body=None,
                 write: bool = False, project: int | None = None, missing_ok: bool = False,
                 timeout: float | None = None):
        """One API call, decoded as JSON, with Label Studio's failures turned into relabel errors.

        ``missing_ok`` returns None for a 404 instead of raising (a page past the end of a listing, a task
        already deleted). A request that is not idempotent (POST) and failed after it was sent raises
        OutcomeUnknown: the caller re-checks what landed (``_write_missing``). ``write`` marks calls that change
        Label Studio, for the reader; retrying is decided by the method, in connectors/http.py. ``timeout``
        (seconds) replaces the client's for a call that may take long (a snapshot export built inside its POST).
        """
        what = f"{method} /{path}"
        unsure = method.upper() not in IDEMPOTENT_METHODS
        with self._translate(what, project, unsure):
            # Retries are the transport's (connectors/http.py); the SDK's would re-send POSTs.
            options = NO_RETRY if timeout is None else {**NO_RETRY, "timeout_in_seconds": timeout}
            response = self._raw.request(path, method=method, params=params, json=json_body,
                                         request_options=options)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            if unsure and (response.status_code >= 500 or response.status_code == 429):
                raise OutcomeUnknown(f"Label Studio at {url_without_userinfo(self.url)} answered "
                                     f"{response.status_code} to {what}, which may or may not have been carried out.")
            raise_for_status(self, response.status_code, response.text, what, project,
                              retried=retry_summary(response))
        if 300 <= response.status_code < 400 or (response.content and not looks_like_json(response)):
            if unsure and response.status_code < 300:
                raise_unknown_not_json(self, response, what)
            raise_not_json(self, response, what)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if unsure:
                raise_unknown_not_json(self, response, what)
            raise_not_json(self, response, what)

    def _project_json(self, project_id: int | None = None, refresh: bool = False) -> dict:
        project_id = project_id or self.project_id
        if project_id == self.project_id and self._project is not None and not refresh:
            return self._project
        body = self._request("GET", f"api/projects/{project_id}", project=project_id)
        if not isinstance(body, dict) or "id" not in body:
            raise_unreadable(self, f"GET /api/projects/{project_id}", body)
        if project_id == self.project_id:
            self._project = body
        return body

    def _label_config(self) -> LabelConfig:
        if self._config is None:
            xml = self._project_json().get("label_config") or ""
            self._config = parse_label_config(xml, label_tag=self._label_tag, text_field=self._text_field)
        return self._config

    def _user_names(self) -> dict[int, str]:
        """User id -> email, fetched once: annotations carry only the id."""
        if self._users is None:
            body = self._request("GET", "api/users/")
            users = body.get("results", body) if isinstance(body, dict) else body
            self._users = {u["id"]: (u.get("email") or u.get("username") or str(u["id"])) for u in users}
        return self._users

    def _annotator(self, completed_by) -> str:
        """completed_by is an id in lists and exports but a dict from a single-task GET; accept both."""
        if isinstance(completed_by, dict):
            if completed_by.get("email"):
                return completed_by["email"]
            completed_by = completed_by.get("id")
        if completed_by is None:
            return "unknown"
        return self._user_names().get(completed_by) or str(completed_by)

    def _iter_tasks(self, project_id: int, *, fields: str = "all", filters: dict | None = None,
                    task_ids: list[int] | None = None) -> Iterable[dict]:
        """Every task of a project (or of ``task_ids``), page by page, in id order (stable while others write)."""
        if task_ids is not None and len(task_ids) > PAGE_SIZE:
            # The ids travel in the query string: keep it far below the server's 64 KB request-line limit.
            for start in range(0, len(task_ids), PAGE_SIZE):
                yield from self._iter_tasks(project_id, fields=fields, filters=filters,
                                            task_ids=task_ids[start:start + PAGE_SIZE])
            return
        query: dict = {"ordering": ["tasks:id"]}
        if filters is not None:
            query["filters"] = filters
        if task_ids is not None:
            query["selectedItems"] = {"all": False, "included": task_ids}
        page = 1
        while True:
            params = {"project": project_id, "fields": fields, "page": page, "page_size": PAGE_SIZE,
                      "query": json.dumps(query)}
            # Label Studio answers 404 for a page past the end, which happens when the last page was full.
            body = self._request("GET", "api/tasks/", params=params, project=project_id, missing_ok=page > 1)
            if body is None:
                return
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            yield from tasks
            if len(tasks) < PAGE_SIZE:
                return
            page += 1

    # ----------------------------------------------------------------------------------------------- describe
    def describe(self) -> ProjectInfo:
        """Title, counts, classes (config order), label tag and text field of the source project."""
        project = self._project_json(refresh=True)
        self._config = None
        config = self._label_config()
        return ProjectInfo(project_id=self.project_id, title=project.get("title") or "", classes=config.classes,
                           label_tag=config.label_tag, text_field=config.text_field,
                           n_tasks=int(project.get("task_number") or 0),
                           n_annotations=int(project.get("total_annotations_number") or 0),
                           label_config=project.get("label_config") or "",
                           n_skipped=int(project.get("skipped_annotations_number") or 0),
                           review_of=review_of(project.get("description")))

    # ----------------------------------------------------------------------------------------------- pull
    def pull(self, since: str | None = None, reconcile: bool = False) -> Pull:
        """Tasks and annotations of the source project; only tasks updated after ``since`` when it is given.

        The whole pull in memory (the Connector protocol); ``pull_batches`` is the same in bounded memory.
        ``reconcile`` reads the whole project (whatever ``since``) and fills ``all_annotation_ids`` and
        ``all_item_ids`` so the caller can delete what is gone, but returns only the tasks changed since
        ``since``. ``cursor`` is the newest task ``updated_at`` seen; pass it as the next ``since``.
        """
        since = None if since is None else normalise_time(since)
        pulled = label_studio_pull.collect(self.pull_batches(since=since, full=reconcile), full=reconcile)
        if since is None or not reconcile:
            return pulled
        changed = [i for i in pulled.items if i.updated_at is None or i.updated_at > since]
        keep = {i.item_id for i in changed}
        return replace(pulled, items=changed, annotations=[a for a in pulled.annotations if a.item_id in keep])

    def pull_batches(self, since: str | None = None, full: bool = False) -> Iterator[Pull]:
        """The pull as batches of whole tasks (see connectors/label_studio_pull.py): a streamed snapshot when
        ``full`` or without ``since``, else the tasks updated after ``since``."""
        return label_studio_pull.pull_batches(self, since=since, full=full)

    def project_counts(self) -> label_studio_pull.ProjectCounts:
        """Tasks, finished and skipped annotations as Label Studio counts them now."""
        return label_studio_pull.project_counts(self)

    def deleted_task_ids(self, known_ids) -> set[str]:
        """Which of the task ids ``known_ids`` are no longer in the project (bisection on counts)."""
        return label_studio_pull.deleted_task_ids(self, known_ids)

    def _annotation_record(self, annotation: dict, task_id: int, config: LabelConfig,
                           warnings: list[str], kind: str = "annotation") -> AnnotationRecord:
        label, valid, problem = choice_of(annotation, config)
        if problem:
            warnings.append(f"Annotation {annotation['id']} on task {task_id} {problem}; "
                            f"it is stored but not scored until the choice is fixed in Label Studio.")
        return AnnotationRecord(
            annotation_id=str(annotation["id"]), item_id=str(task_id),
            annotator_id=self._annotator(annotation.get("completed_by")), label=label,
            created_at=annotation.get("created_at"), updated_at=annotation.get("updated_at"), kind=kind,
            skipped=bool(annotation.get("was_cancelled")), valid=valid,
            lead_time=seconds(annotation.get("lead_time")))

    def _check_visibility(self, n_visible: int, authors: set[int]) -> None:
        """Refuse a key that sees only its own annotations: consensus would silently see one annotator.

        Label Studio Enterprise filters tasks.list by the key owner's role; an annotator's key returns its own
        annotations only. The project endpoint still counts them all, which gives the mismatch away.
        """
        total = int(self._project_json().get("total_annotations_number") or 0)
        if n_visible >= total:
            return
        me = self._request("GET", "api/current-user/whoami")
        if authors <= {me.get("id")}:
            raise AuthError(
                f"The API key of {me.get('email') or me.get('id')} sees {n_visible} of the {total} annotations in "
                f"project {self.project_id} (only its own); set {API_KEY_VARIABLE} to an owner's or administrator's key."
            )

    # ----------------------------------------------------------------------------------------------- push
    def push(self, requests: list[ReviewRequest], *, mode: str = "project", show_suggestion: bool = True,
             preselect: bool = False, unsure_since: float | None = None) -> list[PushedTask]:
        """Put review requests into Label Studio with one bulk import; return where each landed.

        ``mode="project"``: tasks in a review project next to the source (created on first use, with the review
        config of connectors/review_config.py: the item, a read-only panel and the reviewed Choices), each
        carrying the item's data plus relabel_* fields (the panel's among them; ``relabel_quality`` sorts).
        ``preselect`` adds the suggested label as a prediction, which Label Studio pre-selects.
        ``mode="in_place"``: a prediction on the item's own task (an empty one unless ``preselect``: it marks the
        round and carries the quality for sorting), one more requested annotation (overlap) and a saved view
        "relabel round N". Idempotent: what an earlier push of the same (item, round) created is
        found and returned, never created twice.

        ``unsure_since`` (a ``time.time()``) says an earlier push started then and may have sent writes whose
        outcome is unknown (it was killed, or lost the answer): they may still land, so what is there is listed
        until it stops changing (``_settled``) before anything missing is sent.
        """
        if mode not in MODES:
            raise ConfigError(f"The push mode must be one of {', '.join(MODES)}. Got {mode!r}.")
        requests = list(requests)
        if not requests:
            return []
        config = self._label_config()
        _check_requests(requests, config, mode)
        if mode == "project":
            return self._push_project(requests, config, show_suggestion, preselect, unsure_since)
        return self._push_in_place(requests, config, preselect, unsure_since)

    # ---- writes whose outcome may be unknown -----------------------------------------------------------
    def _settled(self, look: Callable[[], object], size: Callable[[object], int], sent_at: float | None):
        """``look()`` again and again until what it sees stops changing, when a write sent at ``sent_at`` (a
        ``time.time()``) may still be on its way; at once when nothing is in doubt.

        A POST that was delayed (by a proxy, a busy server) can land after its sender died or gave up; sending
        the same thing again before it landed is how duplicates happen. So we wait until the write is at least
        ``SETTLE_SECONDS`` old and two looks ``SETTLE_POLL_SECONDS`` apart agree.
        """
        seen = look()
        if sent_at is None or time.time() >= sent_at + SETTLE_SECONDS + SETTLE_POLL_SECONDS:
            return seen      # nothing in doubt, or so long ago that it has landed or never will
        give_up = time.monotonic() + SETTLE_MAX_SECONDS
        while time.monotonic() < give_up:
            time.sleep(SETTLE_POLL_SECONDS)
            again = look()
            if size(again) == size(seen) and time.time() >= sent_at + SETTLE_SECONDS:
                return again
            seen = again
        log.warning("Label Studio kept changing while relabel waited for an earlier write to land; going on.")
        return seen

    def _write_missing(self, what: str, look: Callable[[], object], size: Callable[[object], int],
                       send: Callable[[object], object], unsure_since: float | None):
        """Send only what ``look()`` shows missing (``send(seen)`` returns None when nothing is), and after a write
        whose outcome is unknown, look again (settled) before sending what is still missing.

        Returns ``(seen, answer)``: the last settled look and the answer of the send that went through (None if
        nothing had to be sent, or what it created was found by looking).
        """
        seen = self._settled(look, size, unsure_since)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            sent_at = time.time()
            try:
                return seen, send(seen)
            except OutcomeUnknown as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise ConnectorError(f"{exc} It was tried {attempt} times, each time re-checking what had "
                                         f"landed; run the command again to finish {what}.") from None
                log.warning("%s: outcome unknown (%s); re-checking what landed before sending the rest.", what, exc)
                seen = self._settled(look, size, sent_at)
        raise AssertionError("unreachable")

    # ---- review project ----------------------------------------------------------------------------------
    def review_project_id(self, create: bool = False, show_suggestion: bool = False,
                          unsure_since: float | None = None) -> int | None:
        """The review project of this source project, found by the marker in its description.

        When a lost answer made two of them (a creation that landed late), the oldest is the one; empty later
        ones are deleted.
        """
        def look() -> list[dict]:
            return self._marked_projects()

        def send(found: list[dict]):
            if found:
                return None
            source = self._project_json()
            return self._request("POST", "api/projects/", write=True, json_body={
                "title": f"relabel review: {source.get('title') or self.project_id}"[:50],
                "description": f"Items relabel sent for review. {REVIEW_MARKER}{self.project_id}",
                "label_config": self.review_config(show_suggestion),
                # One careful answer per review task is the point; the next round can ask again.
                "maximum_annotations": 1,
            })
        if not create:
            found = look()
        else:
            found, created = self._write_missing("creating the review project", look, len, send, unsure_since)
            if created is not None:
                return created["id"]
        if not found:
            return None
        keep, *extra = sorted(found, key=lambda p: p["id"])
        for project in extra:
            if not int(project.get("task_number") or 0):
                log.warning("Deleting review project %s: an empty duplicate of review project %s.",
                            project["id"], keep["id"])
                self._request("DELETE", f"api/projects/{project['id']}", write=True, missing_ok=True)
        return keep["id"]

    def _marked_projects(self) -> list[dict]:
        marker = f"{REVIEW_MARKER}{self.project_id}"
        found, page = [], 1
        while True:
            body = self._request("GET", "api/projects/", params={"page": page, "page_size": 100,
                                                                 "include": "id,title,description,task_number"})
            projects = body.get("results", []) if isinstance(body, dict) else body
            found += [p for p in projects if marker in (p.get("description") or "").split()]
            if not isinstance(body, dict) or not body.get("next"):
                return found
            page += 1

    def review_project_exists(self, project_id: int) -> bool:
        """False when the project is gone from Label Studio (deleted by someone)."""
        return self._request("GET", f"api/projects/{project_id}", project=project_id, missing_ok=True) is not None

    def _review_listing(self, target: int) -> dict[tuple[str, int], list[dict]]:
        """Every relabel review task in ``target``, by (item, round); more than one means a duplicate."""
        out: dict[tuple[str, int], list[dict]] = {}
        for task in self._iter_tasks(target, fields="all"):
            data = task.get("data") or {}
            if "relabel_item" in data and "relabel_round" in data:
                out.setdefault((str(data["relabel_item"]), int(data["relabel_round"])), []).append(task)
        return out

    def _drop_duplicates(self, target: int, listing: dict[tuple[str, int], list[dict]]) -> dict[tuple[str, int], int]:
        """One task per (item, round): the oldest. Later copies (a late-landing import) are deleted unless
        someone already answered them, which is reported and kept."""
        chosen = {}
        for key, tasks in listing.items():
            first, *copies = sorted(tasks, key=lambda t: t["id"])
            chosen[key] = first["id"]
            for copy in copies:
                if copy.get("annotations") or int(copy.get("total_annotations") or 0):
                    log.warning("Review task %s duplicates task %s (item %s, round %s) and was already answered; "
                                "it is kept, and only task %s's answer is collected.", copy["id"], first["id"],
                                key[0], key[1], first["id"])
                    continue
                self._request("DELETE", f"api/tasks/{copy['id']}", write=True, missing_ok=True)
        return chosen

    def review_config(self, show_suggestion: bool = False) -> str:
        """The review project's labeling config, generated from the source project's."""
        return review_label_config(self._project_json().get("label_config") or "", self._label_config(),
                                   show_suggestion=show_suggestion)

    def _update_review_config(self, target: int, show_suggestion: bool) -> None:
        """Bring an existing review project's config up to date (one made by an older relabel, or a changed
        source config); Label Studio refuses a config that drops labels its annotations use: keep it then."""
        wanted = self.review_config(show_suggestion)
        if (self._project_json(target).get("label_config") or "") == wanted:
            return
        try:
            self._request("PATCH", f"api/projects/{target}", json_body={"label_config": wanted}, write=True,
                          project=target)
        except ConnectorError as exc:
            log.warning("The review project %s keeps its labeling config; Label Studio refused the new one (%s).",
                        target, exc)

    def _push_project(self, requests: list[ReviewRequest], config: LabelConfig, show_suggestion: bool,
                      preselect: bool, unsure_since: float | None) -> list[PushedTask]:
        target = self.review_project_id(create=True, show_suggestion=show_suggestion, unsure_since=unsure_since)
        self._update_review_config(target, show_suggestion)
        by_key = {(r.item_id, r.round): r for r in requests}
        bar = progress.bar(f"Pushing {len(requests)} review tasks", total=1)   # one bulk import

        def send(listing):
            new = [r for key, r in by_key.items() if key not in listing]
            if not new:
                return None
            tasks = [self._review_task(r, config, show_suggestion, preselect) for r in new]
            body = self._request("POST", f"api/projects/{target}/import", params={"return_task_ids": "true"},
                                 json_body=tasks, write=True, project=target)
            if self.after_import is not None:
                self.after_import()
            task_ids = (body or {}).get("task_ids") or []
            if len(task_ids) != len(new):
                raise ConnectorError(f"Label Studio imported {len(task_ids)} of {len(new)} review tasks into "
                                     f"project {target}; push again to complete the round.")
            # The community edition creates tasks in request order and returns their ids in that order.
            return {(r.item_id, r.round): tid for r, tid in zip(new, task_ids)}

        with bar:
            listing, created = self._write_missing(f"pushing round {max(r.round for r in requests)}",
                                                   lambda: self._review_listing(target),
                                                   lambda found: sum(map(len, found.values())), send, unsure_since)
            bar.update()
        existing = self._drop_duplicates(target, listing)
        existing.update(created or {})
        if preselect:
            # Always, not only when something was imported: a rerun after a lost answer or a failed PATCH
            # must not leave the project sorting by the previous round's predictions.
            self._ensure_model_version(target, max(r.round for r in requests))
        return [PushedTask(item_id=r.item_id, round=r.round, target_project=target,
                           task_id=existing[(r.item_id, r.round)], mode="project") for r in requests]

    def _review_task(self, request: ReviewRequest, config: LabelConfig, show_suggestion: bool,
                     preselect: bool) -> dict:
        # The item's own relabel_* fields (e.g. an earlier writeback's relabel_final) would tell the reviewer
        # an answer; only this round's fields go in.
        data = {k: v for k, v in request.data.items() if not str(k).startswith(OWN_PREFIX)}
        data.update({"relabel_item": request.item_id, "relabel_round": request.round,
                     "relabel_quality": float(request.quality)})
        data.update(panel_data(request, show_suggestion=show_suggestion))
        task: dict = {"data": data}
        if preselect:
            task["predictions"] = [self._prediction(request, config, preselect=True)]
        return task

    def _prediction(self, request: ReviewRequest, config: LabelConfig, task_id: int | None = None, *,
                    preselect: bool) -> dict:
        # Without preselect the prediction is empty: it still marks the round (model_version) and carries the
        # quality (score) the saved view sorts on, but selects nothing in the reviewer's editor.
        prediction = {"model_version": model_version(request.round), "score": float(request.quality),
                      "result": [choice_result(config, request.suggested_label)] if preselect else []}
        if task_id is not None:
            prediction["task"] = task_id
        return prediction

    def _ensure_model_version(self, project_id: int, round_number: int) -> None:
        # predictions_score only counts predictions whose model_version is the project's: without this the
        # Data Manager cannot sort the round by quality. A PATCH of an absolute value: safe to retry.
        wanted = model_version(round_number)
        if self._project_json(project_id, refresh=True).get("model_version") != wanted:
            self._request("PATCH", f"api/projects/{project_id}", json_body={"model_version": wanted},
                          write=True, project=project_id)

    def _push_in_place(self, requests: list[ReviewRequest], config: LabelConfig, preselect: bool,
                       unsure_since: float | None) -> list[PushedTask]:
        by_task = {int(r.item_id): r for r in requests}

        def look() -> dict[int, dict]:
            tasks = {t["id"]: t for t in self._iter_tasks(self.project_id, task_ids=sorted(by_task))}
            missing = sorted(set(by_task) - set(tasks))
            if missing:
                raise InputError(f"Tasks {preview(missing)} are not in project {self.project_id} at {self.url}; "
                                 f"pull again and select from the current tasks.")
            return tasks

        def size(tasks: dict[int, dict]) -> int:
            return sum(round_prediction(t, by_task[tid].round) is not None for tid, t in tasks.items())

        def send(tasks: dict[int, dict]):
            new = [r for r in requests if round_prediction(tasks[int(r.item_id)], r.round) is None]
            if not new:
                return None
            predictions = [self._prediction(r, config, int(r.item_id), preselect=preselect) for r in new]
            self._request("POST", f"api/projects/{self.project_id}/import/predictions", json_body=predictions,
                          write=True)
            if self.after_import is not None:
                self.after_import()
            return len(new)

        tasks, sent = self._write_missing(f"pushing round {max(r.round for r in requests)} in place", look, size,
                                          send, unsure_since)
        if sent or self._drop_duplicate_predictions(tasks, requests):
            # Re-read so the overlap step below sees the predictions' timestamps, also on a resumed push.
            tasks = look()
        self._raise_overlap(tasks, requests)
        rounds = sorted({r.round for r in requests})
        for round_number in rounds:
            self._save_view(round_number, unsure_since)
        self._ensure_model_version(self.project_id, rounds[-1])
        return [PushedTask(item_id=r.item_id, round=r.round, target_project=self.project_id,
                           task_id=int(r.item_id), mode="in_place") for r in requests]

    def _drop_duplicate_predictions(self, tasks: dict[int, dict], requests: list[ReviewRequest]) -> int:
        """Delete later copies of a round's prediction on a task (a late-landing import); return how many."""
        dropped = 0
        for r in requests:
            version = model_version(r.round)
            mine = sorted((p for p in tasks[int(r.item_id)].get("predictions") or []
                           if isinstance(p, dict) and p.get("model_version") == version), key=lambda p: p["id"])
            for copy in mine[1:]:
                self._request("DELETE", f"api/predictions/{copy['id']}", write=True, missing_ok=True)
                dropped += 1
        return dropped

    def _raise_overlap(self, tasks: dict[int, dict], requests: list[ReviewRequest]) -> None:
        """Ask Label Studio for one more annotator on each task than it had when the round's prediction came.

        Label Studio counts a task as done when the distinct authors of its finished (not skipped) annotations
        reach its overlap. The target is computed from the annotations older than the prediction, not as
        "current + 1", so a repeated or resumed push sets the same value instead of raising it again.
        ``is_labeled`` is sent too: a PATCH of overlap alone leaves it stale, and a task still marked labelled
        is never handed out for the extra annotation.
        """
        for request in advancing(requests, progress.bar("Requesting one more annotation", total=len(requests))):
            task = tasks[int(request.item_id)]
            prediction = round_prediction(task, request.round)
            pushed_at = prediction.get("created_at") if prediction else None
            finished = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
            before = {user_id(a.get("completed_by")) for a in finished
                      if pushed_at is None or (a.get("created_at") or "") < pushed_at}
            wanted = max(int(task.get("overlap") or 1), len(before) + 1)
            labelled = len({user_id(a.get("completed_by")) for a in finished}) >= wanted
            if int(task.get("overlap") or 1) != wanted or bool(task.get("is_labeled")) != labelled:
                self._request("PATCH", f"api/tasks/{task['id']}", write=True,
                              json_body={"overlap": wanted, "is_labeled": labelled})

    def _save_view(self, round_number: int, unsure_since: float | None = None) -> None:
        """A Data Manager tab listing the round's tasks, lowest quality (prediction score) first."""
        title = view_title(round_number)
        data = {"title": title,
                "filters": {"conjunction": "and", "items": [{
                    "filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
                    "value": [model_version(round_number)]}]},
                "ordering": ["tasks:predictions_score"]}

        def look() -> list[dict]:
            views = self._request("GET", "api/dm/views/", params={"project": self.project_id}) or []
            return sorted((v for v in views if (v.get("data") or {}).get("title") == title), key=lambda v: v["id"])

        def send(views: list[dict]):
            if views:
                return None
            return self._request("POST", "api/dm/views/", write=True,
                                 json_body={"project": self.project_id, "data": data})
        views, created = self._write_missing(f"saving the view {title!r}", look, len, send, unsure_since)
        if created is None and views:
            keep, *copies = views
            self._request("PATCH", f"api/dm/views/{keep['id']}", write=True,
                          json_body={"project": self.project_id, "data": data})
            for copy in copies:     # a creation that landed late
                self._request("DELETE", f"api/dm/views/{copy['id']}", write=True, missing_ok=True)

    # ----------------------------------------------------------------------------------------------- collect
    def collect(self, pushed: list[PushedTask]) -> list[ReviewAnswer]:
        """Every answer on the review tasks, as it stands now (``answered_at`` is its ``updated_at``); a skip has
        label None. Whose answer decides, and what an edit or a second answer means, is the caller's
        business (relabel/loop/decisions.py): the connector reports what is there.

        In a review project every annotation is an answer. In place, an answer is an annotation created after
        the round's prediction by someone who had not annotated the task before.
        """
        config = self._label_config()
        answers: list[ReviewAnswer] = []
        by_project: dict[int, list[PushedTask]] = {}
        for p in pushed:
            by_project.setdefault(p.target_project, []).append(p)
        for project_id, group in by_project.items():
            ids = sorted({p.task_id for p in group})
            bar = progress.bar(f"Collecting answers (project {project_id})", total=len(ids))
            tasks = {t["id"]: t for t in advancing(self._iter_tasks(project_id, task_ids=ids), bar)}
            for p in group:
                task = tasks.get(p.task_id)
                if task is None:
                    log.warning("Review task %s of project %s is gone; its answer cannot be collected.",
                                p.task_id, project_id)
                    continue
                for annotation in self._answers_of(task, p):
                    warnings: list[str] = []
                    record = self._annotation_record(annotation, p.task_id, config, warnings, kind="review")
                    for message in warnings:
                        log.warning(message)
                    if not record.valid:
                        continue
                    answers.append(ReviewAnswer(item_id=p.item_id, round=p.round, task_id=p.task_id,
                                                reviewer=record.annotator_id, label=record.label,
                                                answered_at=record.updated_at or record.created_at,
                                                annotation_id=record.annotation_id))
        return answers

    def _answers_of(self, task: dict, pushed: PushedTask) -> list[dict]:
        annotations = sorted(task.get("annotations") or [], key=lambda a: (a.get("created_at") or "", a["id"]))
        if pushed.mode == "in_place":
            prediction = round_prediction(task, pushed.round)
            if prediction is None:
                return []
            pushed_at = prediction.get("created_at") or ""
            earlier = {user_id(a.get("completed_by")) for a in annotations if (a.get("created_at") or "") < pushed_at}
            annotations = [a for a in annotations if (a.get("created_at") or "") >= pushed_at
                           and user_id(a.get("completed_by")) not in earlier]
        return annotations

    # ----------------------------------------------------------------------------------------------- assign
    def assign(self, pushed: list[PushedTask], reviewers: tuple[str, ...]) -> str:
        """Assign pushed review tasks to the reviewers (emails) where the server allows it; say what happened.

        Task assignment is a Label Studio Enterprise feature (``POST /api/projects/<id>/tasks/assignees``).
        Label Studio Community has no assignment API (it answers 404, measured on 1.23.2): there the
        reviewers find the tasks through the saved view or the review project, and the ``reviewers`` setting
        still decides whose answers count.
        """
        if not pushed or not reviewers:
            return "no reviewers to assign"
        by_email = {email.lower(): uid for uid, email in self._user_names().items()}
        unknown = [r for r in reviewers if r not in by_email]
        if unknown:
            log.warning("Reviewers %s are not users of Label Studio at %s; they cannot be assigned tasks.",
                        preview(unknown), self.url)
        users = [by_email[r] for r in reviewers if r in by_email]
        if not users:
            return "none of the reviewers is a Label Studio user"
        by_project: dict[int, list[int]] = {}
        for p in pushed:
            by_project.setdefault(p.target_project, []).append(p.task_id)
        for project_id, task_ids in by_project.items():
            with self._translate(f"POST /api/projects/{project_id}/tasks/assignees", project_id):
                response = self._raw.request(
                    f"api/projects/{project_id}/tasks/assignees", method="POST", request_options=NO_RETRY,
                    json={"type": "AN", "users": users,
                          "selectedItems": {"all": False, "included": sorted(set(task_ids))}})
            if response.status_code in (403, 404, 405):
                return (f"not assigned: this Label Studio has no task assignment (HTTP {response.status_code}; "
                        "an Enterprise feature)")
            if response.status_code >= 400:
                raise_for_status(self, response.status_code, response.text, "assign review tasks", project_id)
        return f"assigned to {len(users)} reviewers"

    # ----------------------------------------------------------------------------------------------- writeback
    def write_task_field(self, values: dict[str, str | None], field: str = FINAL_FIELD) -> dict[str, int]:
        """Set ``data[field]`` of source tasks to ``values[task id]`` (None removes it); touch only tasks whose
        value differs, so a second run with the same values writes nothing. Returns counts per change.

        Label Studio replaces a task's whole ``data`` on update, so each task's current data is read first and
        only ``field`` changes in it.
        """
        counts = {"written": 0, "updated": 0, "removed": 0, "unchanged": 0, "missing": 0}
        wanted = {int(k): v for k, v in values.items() if str(k).isdigit()}
        if not wanted:
            return counts
        seen = set()
        todo = []
        for task in self._iter_tasks(self.project_id, fields="task_only", task_ids=sorted(wanted)):
            seen.add(task["id"])
            data = dict(task.get("data") or {})
            have, want = data.get(field), wanted[task["id"]]
            if have == want or (want is None and field not in data):
                counts["unchanged"] += 1
                continue
            if want is None:
                data.pop(field, None)
                counts["removed"] += 1
            else:
                counts["written" if have is None else "updated"] += 1
                data[field] = want
            todo.append((task["id"], data))
        counts["missing"] = len(set(wanted) - seen)
        for task_id, data in advancing(todo, progress.bar("Writing final labels", total=len(todo))):
            self._request("PATCH", f"api/tasks/{task_id}", json_body={"data": data}, write=True)
        return counts


def _check_requests(requests: list[ReviewRequest], config: LabelConfig, mode: str) -> None:
    unknown = [r.item_id for r in requests if r.suggested_label not in config.classes]
    if unknown:
        raise InputError(f"Review requests for items {preview(unknown)} suggest a label that is not a class of the "
                         f"labeling config ({preview(config.classes)}); suggest one of the classes.")
    keys = [(r.item_id, r.round) for r in requests]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise InputError(f"Items {preview(dupes)} are requested twice in the same round; push each item once per round.")
    if mode == "in_place":
        bad = [r.item_id for r in requests if not str(r.item_id).isdigit()]
        if bad:
            raise InputError(f"In-place review needs Label Studio task ids as item ids; items {preview(bad)} are not; "
                             f"use mode='project'.")
        by_task: dict[str, int] = {}
        for r in requests:
            by_task[r.item_id] = by_task.get(r.item_id, 0) + 1
        twice = [i for i, n in by_task.items() if n > 1]
        if twice:
            raise InputError(f"In place, a task can be in one round per push; items {preview(twice)} are in several.")
