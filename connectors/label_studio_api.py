"""The connector's plumbing: one Label Studio project's API, its calls decoded as plain JSON with failures turned
into relabel errors, the project, its labeling config and users read once, tasks listed page by page, and an
annotation read as an AnnotationRecord.

``LabelStudioApi`` is the base every part of connectors/label_studio.py's ``LabelStudioConnector`` builds on
(reads, review project, in-place review, answers); connectors/label_studio_pull.py takes one as its argument.
"""
from __future__ import annotations

import json
import re
from typing import Callable, Iterable

import httpx
from label_studio_sdk import LabelStudio

from relabel.config import checked_api_key, label_studio_url
from relabel.errors import AuthError, ConfigError, OutcomeUnknown
from relabel.redaction import url_without_userinfo

from connectors.http import IDEMPOTENT_METHODS, retry_summary, retrying_client
from connectors.label_config import LabelConfig, parse_label_config
from connectors.label_studio_common import choice_of, choice_set_label, seconds
from connectors.label_studio_errors import (API_KEY_VARIABLE, Translate, looks_like_json, raise_for_status,
                                            raise_not_json, raise_unknown_not_json, raise_unreadable)
from connectors.records import AnnotationRecord

# Tasks per page when listing. Larger pages mean fewer requests; 1,000 keeps one response at a few MB.
PAGE_SIZE = 1000
NO_RETRY = {"max_retries": 0}
DEFAULT_TIMEOUT = 300.0


class LabelStudioApi:
    """One Label Studio project's API, as every part of the connector calls it.

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
        # Which advice a 401 gets (connectors/label_studio_errors.py): a legacy token is 40 hex characters; a
        # personal access token is a JWT. Only the kind is kept, never the key.
        self.key_kind = "legacy" if re.fullmatch(r"[0-9a-fA-F]{40}", api_key) else "personal"
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

    def _translate(self, what: str, project: int | None = None, unsure: bool = False) -> Translate:
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

    def _annotation_record(self, annotation: dict, task_id: int, config: LabelConfig,
                           warnings: list[str], kind: str = "annotation") -> AnnotationRecord:
        # A multi-label project's label is its set, as canonical JSON text (connectors/label_studio_common.py).
        label, valid, problem = (choice_set_label if config.multiple else choice_of)(annotation, config)
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
