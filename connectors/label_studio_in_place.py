"""Review in place (push mode "in_place"): a prediction marking the round on the item's own task, one more
requested annotation (overlap) and a saved Data Manager view "relabel round N" sorted by quality; duplicates a
late-landing write made (a second prediction, a second view) removed.
"""
from __future__ import annotations

from relabel import progress
from relabel.errors import InputError, preview

from connectors.label_config import LabelConfig
from connectors.label_studio_common import advancing, model_version, prediction, round_prediction, user_id
from connectors.label_studio_writes import Writes
from connectors.records import PushedTask, ReviewRequest


def view_title(round_number: int) -> str:
    return f"relabel round {round_number}"


class InPlaceReview(Writes):
    """Review requests put on the source project's own tasks."""

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
            predictions = [prediction(r, config, int(r.item_id), preselect=preselect) for r in new]
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
            round_pred = round_prediction(task, request.round)
            pushed_at = round_pred.get("created_at") if round_pred else None
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
