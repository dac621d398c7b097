"""The connector's reads of the source project: ``describe`` (title, counts, classes) and the pull (all of it,
in batches, the counts, deleted tasks), the latter delegated to connectors/label_studio_pull.py.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from connectors import label_studio_pull
from connectors.label_config import is_span_config, parse_span_config
from connectors.label_studio_api import LabelStudioApi
from connectors.label_studio_common import normalise_time, review_of
from connectors.records import ProjectInfo, Pull


class ProjectReads(LabelStudioApi):
    """What the source project holds, read for the Connector protocol of connectors/records.py."""

    def describe(self) -> ProjectInfo:
        """Title, counts, classes (config order), label tag and text field of the source project."""
        project = self._project_json(refresh=True)
        self._config = None
        if is_span_config(project.get("label_config") or ""):   # <Labels> on a text: a span project (issue 23)
            return span_project_info(self, project, self._text_field)
        config = self._label_config()
        return ProjectInfo(project_id=self.project_id, title=project.get("title") or "", classes=config.classes,
                           label_tag=config.label_tag, text_field=config.text_field,
                           n_tasks=int(project.get("task_number") or 0),
                           n_annotations=int(project.get("total_annotations_number") or 0),
                           label_config=project.get("label_config") or "",
                           n_skipped=int(project.get("skipped_annotations_number") or 0),
                           review_of=review_of(project.get("description")), multi_label=config.multiple)

    def task_data_fields(self, limit: int = 20) -> set[str] | None:
        """The data fields of the project's first ``limit`` tasks (what `relabel init` checks --text-field
        against), or None when Label Studio would not list them."""
        from relabel.errors import RelabelError
        try:
            body = self._request("GET", "api/tasks", params={"project": self.project_id, "page_size": limit,
                                                             "page": 1}, project=self.project_id, missing_ok=True)
        except RelabelError:
            return None
        tasks = body.get("tasks") if isinstance(body, dict) else body
        if not isinstance(tasks, list):
            return None
        return {str(k) for t in tasks if isinstance(t, dict) and isinstance(t.get("data"), dict) for k in t["data"]}

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


def span_project_info(conn, project: dict, text_field: str | None = None) -> ProjectInfo:
    """What `relabel init` prints for a span project: the labels of every control as its classes."""
    config = parse_span_config(project.get("label_config") or "", text_field=text_field)
    labels = tuple(dict.fromkeys(label for c in config.controls for label in c.labels))
    return ProjectInfo(project_id=conn.project_id, title=project.get("title") or "", classes=labels,
                       label_tag=",".join(c.name for c in config.controls), text_field=config.text_field,
                       n_tasks=int(project.get("task_number") or 0),
                       n_annotations=int(project.get("total_annotations_number") or 0),
                       label_config=project.get("label_config") or "",
                       n_skipped=int(project.get("skipped_annotations_number") or 0),
                       review_of=review_of(project.get("description")))
