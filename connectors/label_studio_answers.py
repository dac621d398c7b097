"""Reviewers' side of a push: collecting the answers on pushed review tasks (in a review project or in place) and
assigning the tasks to reviewers where Label Studio allows it.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from relabel import progress
from relabel.errors import preview

from connectors.label_studio_api import NO_RETRY, LabelStudioApi
from connectors.label_studio_common import advancing, normalise_time, round_prediction, user_id
from connectors.label_studio_errors import raise_for_status
from connectors.records import PushedTask, ReviewAnswer
from connectors.review_config import is_flagged

log = logging.getLogger(__name__)

# A connector that collected before reads again only the pushed tasks updated since (an annotation created, edited
# or cancelled bumps its task's updated_at), back to this long before the newest updated_at it saw: a write that
# Label Studio's threaded server committed after a later one was read still lands inside it. relabel serve keeps one
# connector and collects after every burst of answers; a command's connector always reads everything.
COLLECT_OVERLAP_SECONDS = 60.0
# ... and reads every pushed task again at least this often, as a safety net (like the pull's full read).
FULL_COLLECT_SECONDS = 3600.0


class ReviewAnswers(LabelStudioApi):
    """What reviewers answered on pushed tasks, and who is asked."""

    def collect(self, pushed: list[PushedTask]) -> list[ReviewAnswer]:
        """Every answer on the review tasks, as it stands now (``answered_at`` is its ``updated_at``); a skip has
        label None. Whose answer decides, and what an edit or a second answer means, is the caller's
        business (relabel/loop/decisions.py): the connector reports what is there.

        In a review project every annotation is an answer. In place, an answer is an annotation created after
        the round's prediction by someone who had not annotated the task before.

        A second collect by the same connector reports only the tasks updated since the first (see
        COLLECT_OVERLAP_SECONDS): what it leaves out was reported before and has not changed.
        """
        config = self._label_config()
        answers: list[ReviewAnswer] = []
        by_project: dict[int, list[PushedTask]] = {}
        for p in pushed:
            by_project.setdefault(p.target_project, []).append(p)
        for project_id, group in by_project.items():
            ids = sorted({p.task_id for p in group})
            bar = progress.bar(f"Collecting answers (project {project_id})", total=len(ids))
            since = self._collect_since(project_id)
            filters = None if since is None else {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": since}]}
            tasks = {t["id"]: t for t in advancing(self._iter_tasks(project_id, task_ids=ids, filters=filters), bar)}
            self._collected(project_id, tasks.values(), full=since is None)
            for p in group:
                task = tasks.get(p.task_id)
                if task is None:
                    if since is not None:
                        continue        # not updated since the last collect, which reported it
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
                                                annotation_id=record.annotation_id,
                                                flagged=is_flagged(annotation)))
        return answers

    def _collect_since(self, project_id: int) -> str | None:
        """The updated_at after which this collect reads tasks, or None to read every pushed task."""
        seen = getattr(self, "_collect_cursors", {}).get(project_id)
        if seen is None or time.monotonic() - seen["full_at"] > FULL_COLLECT_SECONDS or not seen["newest"]:
            return None
        newest = datetime.fromisoformat(seen["newest"].replace("Z", "+00:00"))
        return normalise_time((newest - timedelta(seconds=COLLECT_OVERLAP_SECONDS)).isoformat())

    def _collected(self, project_id: int, tasks, full: bool) -> None:
        cursors = self.__dict__.setdefault("_collect_cursors", {})
        seen = cursors.get(project_id) or {"newest": "", "full_at": time.monotonic()}
        stamps = [normalise_time(t["updated_at"]) for t in tasks if t.get("updated_at")]
        cursors[project_id] = {"newest": max([seen["newest"], *stamps]),
                               "full_at": time.monotonic() if full else seen["full_at"]}

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
