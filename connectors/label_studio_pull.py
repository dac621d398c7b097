"""Pulling a Label Studio project at scale: changed tasks only, deletions from the counts, a streamed full pull.

Why it looks the way it does (measured in issue 15, see benchmarks/bench_scale.py):
- An incremental pull asks the task list for tasks whose ``updated_at`` is after the cursor. Label Studio bumps a
  task's ``updated_at`` whenever one of its annotations is created, changed or deleted, and the task list returns
  every annotation of each task it returns, so a changed task comes back whole: the store can also mark the
  annotations it no longer has as deleted. Nothing changed costs one filtered, empty page.
- Deleted tasks leave no trace in the task list. The project's counts (``GET /api/projects/{id}``: tasks,
  finished and skipped annotations) say whether anything went away; only then are the deleted ids looked for,
  by bisecting id ranges with counts and listing only small ranges (``fields=task_only``), and only if the
  annotation counts still disagree after that is a full pull made.
- A full pull goes through a snapshot export (``POST /api/projects/{id}/exports/``, then its download): Label
  Studio writes it to a file on its side, so its memory stays flat, and relabel downloads it to a temporary file
  and parses it task by task with ijson, so the client's memory stays flat too. The snapshot is deleted on the
  server afterwards. The synchronous export endpoint instead builds the whole answer in memory on both sides and
  has to finish within one request's timeout.

Every pull is a sequence of batches (``connectors.records.Pull``), each holding whole tasks with all their
annotations, so the store can write batch by batch in bounded memory.

The functions here take the connector's plumbing (``LabelStudioApi``, connectors/label_studio_api.py); the
connector (connectors/label_studio_reads.py) calls them, and nothing here imports it back.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from relabel import progress
from relabel.errors import ConnectorError, OutcomeUnknown
from relabel.redaction import url_without_userinfo

from connectors.label_studio_api import LabelStudioApi
from connectors.label_studio_common import normalise_time, readable_task, user_id
from connectors.label_studio_errors import raise_for_status, raise_unreadable
from connectors.records import AnnotationRecord, Item, Pull

log = logging.getLogger(__name__)

# Known task ids at which the bisection for deleted tasks stops counting and lists the range's ids instead.
LEAF_TASKS = 200
# Tasks per batch handed to the store: the batch's records are the only part of a pull held in memory at once.
BATCH_TASKS = 1000
# The snapshot's request timeouts grow with the project. Label Studio spends ~2.2 ms of server CPU per exported
# task (3 annotations each) on an idle machine; 20 ms per task leaves a 9x margin for a busy or slower server,
# and the floor covers the fixed cost of a small project. A fixed timeout failed at ~130,000 tasks.
SNAPSHOT_SECONDS_PER_TASK = 0.02
SNAPSHOT_MIN_TIMEOUT = 120.0
# While a snapshot is built in the background (Label Studio with Redis), poll its status this often.
SNAPSHOT_POLL_SECONDS = 1.0
# Attempts at creating a snapshot whose answer was lost or a 5xx/429 (each after checking it did not land).
SNAPSHOT_CREATE_ATTEMPTS = 5
# Downloaded snapshot bytes are written to the temporary file in chunks of this size.
DOWNLOAD_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ProjectCounts:
    """What Label Studio counts in a project: tasks, finished (not skipped) annotations, skipped annotations."""

    tasks: int
    annotations: int
    skipped: int


def snapshot_timeout(n_tasks: int) -> float:
    """Seconds one snapshot request may take for a project of ``n_tasks`` tasks."""
    return max(SNAPSHOT_MIN_TIMEOUT, SNAPSHOT_SECONDS_PER_TASK * max(0, int(n_tasks)))


def project_counts(connector: LabelStudioApi) -> ProjectCounts:
    """The project's task and annotation counts, read fresh (one small GET)."""
    project = connector._project_json(refresh=True)
    return ProjectCounts(tasks=int(project.get("task_number") or 0),
                         annotations=int(project.get("total_annotations_number") or 0),
                         skipped=int(project.get("skipped_annotations_number") or 0))


def deleted_task_ids(connector: LabelStudioApi, known_ids: Iterable[str]) -> set[str]:
    """Which of ``known_ids`` (the task ids the store holds as live) are no longer in the project.

    Bisection on counts: the task list answers how many tasks have an id in a range (one cheap request with a
    page of one task), and a range whose count equals the number of known ids in it lost nothing. Ranges that
    lost something are halved until they hold at most ``LEAF_TASKS`` known ids, which are then listed without
    annotations. d deleted tasks cost about d x log2(n / LEAF_TASKS) counts and d small listings, instead of
    listing the whole project (at 10,000 tasks the full id listing cost ~75% of a full export's server CPU).
    Ids created after the store's newest id are outside every range, so new tasks never hide a deletion.
    """
    ids = sorted({int(i) for i in known_ids})
    gone: set[str] = set()
    stack = [(0, len(ids) - 1)] if ids else []
    while stack:
        lo, hi = stack.pop()
        expected = hi - lo + 1
        if _count_tasks(connector, ids[lo], ids[hi]) >= expected:
            continue
        if expected <= LEAF_TASKS:
            listed = {t["id"] for t in connector._iter_tasks(connector.project_id, fields="task_only",
                                                              filters=_id_range(ids[lo], ids[hi]))}
            gone.update(str(i) for i in ids[lo:hi + 1] if i not in listed)
            continue
        mid = (lo + hi) // 2
        stack += [(mid + 1, hi), (lo, mid)]
    return gone


def _id_range(first: int, last: int) -> dict:
    return {"conjunction": "and", "items": [{"filter": "filter:tasks:id", "operator": "in", "type": "Number",
                                             "value": {"min": int(first), "max": int(last)}}]}


def _count_tasks(connector: LabelStudioApi, first: int, last: int) -> int:
    """How many tasks of the project have an id in [first, last] (the list's total; one task serialised)."""
    query = json.dumps({"filters": _id_range(first, last)})
    body = connector._request("GET", "api/tasks/", project=connector.project_id,
                              params={"project": connector.project_id, "fields": "task_only", "page_size": 1,
                                      "query": query})
    return int(body.get("total", 0)) if isinstance(body, dict) else len(body or [])


def pull_batches(connector: LabelStudioApi, since: str | None = None, full: bool = False,
                 batch_tasks: int = BATCH_TASKS) -> Iterator[Pull]:
    """The project's tasks and annotations as batches of whole tasks.

    ``full`` (or no ``since``) reads every task from a streamed snapshot export; otherwise only tasks updated
    after ``since`` come, from the filtered task list. Each batch's ``cursor`` is the newest ``updated_at`` seen
    so far; the last batch's is the next ``since``. A full pull ends with a visibility check: a key that sees
    only its own annotations is refused after the batches (the store writes its cursor only after the last one).
    """
    if since is not None:
        since = normalise_time(since)
    full = full or since is None
    connector._project_json(refresh=True)
    config = connector._label_config()
    n_tasks = int(connector._project_json().get("task_number") or 0)
    if full:
        tasks = snapshot_tasks(connector, n_tasks)
    else:
        filters = {"conjunction": "and", "items": [
            {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": since}]}
        tasks = connector._iter_tasks(connector.project_id, filters=filters)
    cursor = since
    visible, authors = 0, set()
    items: list[Item] = []
    records: list[AnnotationRecord] = []
    warnings: list[str] = []
    bar = progress.bar("Pulling tasks", total=n_tasks if full else None)
    with bar:
        for task in tasks:
            bar.update()
            if not readable_task(task):
                raise_unreadable(connector, "the snapshot export" if full else "the task list", task)
            updated = task.get("updated_at")
            if updated is not None and (cursor is None or updated > cursor):
                cursor = updated
            data = task.get("data") or {}
            text = data.get(config.text_field) if config.text_field else None
            items.append(Item(item_id=str(task["id"]), data=data, text=None if text is None else str(text),
                              updated_at=updated))
            for annotation in task.get("annotations") or []:
                record = connector._annotation_record(annotation, task["id"], config, warnings)
                records.append(record)
                if not record.skipped:
                    visible += 1
                    authors.add(user_id(annotation.get("completed_by")))
            if len(items) >= batch_tasks:
                yield Pull(items=items, annotations=records, cursor=cursor, warnings=warnings)
                items, records, warnings = [], [], []
    if items or warnings or cursor != since:
        yield Pull(items=items, annotations=records, cursor=cursor, warnings=warnings)
    if full:
        connector._check_visibility(visible, authors)


def snapshot_tasks(connector: LabelStudioApi, n_tasks: int) -> Iterator[dict]:
    """Every task of the project with all its annotations, from a snapshot export parsed incrementally.

    The snapshot is made, downloaded to a temporary file and deleted on the server before the first task is
    yielded, so a slow consumer never holds a snapshot open on the server; the file goes when iteration ends.
    """
    import ijson  # noqa: PLC0415 (only a full pull needs it)

    timeout = snapshot_timeout(n_tasks)
    with tempfile.TemporaryFile(prefix="relabel-snapshot-", suffix=".json") as file:
        _download_snapshot(connector, file, timeout)
        file.seek(0)
        head = file.read(200)
        if not head.lstrip().startswith(b"["):   # a list of tasks, whatever the size; anything else is not
            raise_unreadable(connector, "the snapshot export", head.decode("utf-8", "replace"))
        file.seek(0)
        try:
            # use_float: annotation fields such as lead_time are floats; ijson would give Decimal by default.
            yield from ijson.items(file, "item", use_float=True)
        except ijson.JSONError as exc:
            raise ConnectorError(f"The snapshot export of project {connector.project_id} at {_url(connector)} is "
                                 f"not valid JSON ({exc}); check the server log and pull again.") from None


def _download_snapshot(connector: LabelStudioApi, file: IO[bytes], timeout: float) -> None:
    project = connector.project_id
    base = f"api/projects/{project}/exports"
    snapshot = _create_snapshot(connector, base, timeout)
    export_id = snapshot["id"]
    try:
        _wait_for_snapshot(connector, snapshot, timeout)
        path = f"{base}/{export_id}/download"
        options = {"timeout_in_seconds": timeout, "max_retries": 0}
        with connector._translate(f"GET /{path}", project):
            with connector._raw.stream(path, method="GET", params={"exportType": "JSON"},
                                       request_options=options) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_status(connector, response.status_code, response.text, f"GET /{path}", project)
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                    file.write(chunk)
    finally:
        _delete_snapshot(connector, export_id)


def _create_snapshot(connector: LabelStudioApi, base: str, timeout: float) -> dict:
    """Create the snapshot, riding out a lost answer or a 5xx/429 like every other step of a pull does.

    The POST is not retried blindly by the transport (its outcome is unknown once sent), so, as the push does,
    relabel re-checks what landed: the snapshot carries a title unique to this pull, and after a failure the
    project's snapshots are listed; one with that title is used, otherwise the POST is sent again.
    """
    project = connector.project_id
    title = f"relabel pull {uuid.uuid4().hex} (deleted after download)"
    for attempt in range(SNAPSHOT_CREATE_ATTEMPTS):
        try:
            return connector._request("POST", f"{base}/", json_body={"title": title}, write=True, project=project,
                                      timeout=timeout)
        except OutcomeUnknown:
            if attempt == SNAPSHOT_CREATE_ATTEMPTS - 1:
                raise
            landed = [s for s in connector._request("GET", f"{base}/", project=project) or []
                      if isinstance(s, dict) and s.get("title") == title]
            if landed:
                return landed[0]
            time.sleep(SNAPSHOT_POLL_SECONDS * 2 ** attempt)
    raise AssertionError("unreachable")


def _wait_for_snapshot(connector: LabelStudioApi, snapshot: dict, timeout: float) -> None:
    """Label Studio without a job queue builds the snapshot inside the POST; with Redis it builds it in the
    background, so poll until it is done, for at most the same scaled timeout."""
    project, export_id = connector.project_id, snapshot["id"]
    deadline = time.monotonic() + timeout
    while snapshot.get("status") not in ("completed", "failed"):
        if time.monotonic() > deadline:
            raise ConnectorError(f"Label Studio at {_url(connector)} did not finish the snapshot export of project "
                                 f"{project} within {timeout:.0f} s; retry when the server is less busy.")
        time.sleep(SNAPSHOT_POLL_SECONDS)
        snapshot = connector._request("GET", f"api/projects/{project}/exports/{export_id}", project=project)
    if snapshot.get("status") == "failed":
        raise ConnectorError(f"Label Studio at {_url(connector)} failed to build the snapshot export of project "
                             f"{project}; check the server log and pull again.")


def _delete_snapshot(connector: LabelStudioApi, export_id: int) -> None:
    """Remove the snapshot (and its file) on the server; a failure here loses nothing, so it is only logged."""
    try:
        connector._request("DELETE", f"api/projects/{connector.project_id}/exports/{export_id}", write=True,
                           project=connector.project_id)
    except ConnectorError as exc:
        log.warning("The snapshot export %s of project %s could not be deleted on the server (%s); delete it "
                    "from the project's export page.", export_id, connector.project_id, exc)


def _url(connector: LabelStudioApi) -> str:
    """The server's URL as messages show it (without any user:password part)."""
    return url_without_userinfo(connector.url)


def collect(batches: Iterable[Pull], full: bool) -> Pull:
    """All batches as one Pull (the Connector protocol's ``pull``), with every id listed when ``full``."""
    items: list[Item] = []
    records: list[AnnotationRecord] = []
    warnings: list[str] = []
    cursor = None
    for batch in batches:
        items.extend(batch.items)
        records.extend(batch.annotations)
        warnings.extend(batch.warnings)
        cursor = batch.cursor if batch.cursor is not None else cursor
    return Pull(items=items, annotations=records, cursor=cursor, warnings=warnings,
                all_annotation_ids={r.annotation_id for r in records} if full else None,
                all_item_ids={i.item_id for i in items} if full else None)
