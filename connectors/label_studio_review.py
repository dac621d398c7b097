"""Review in a separate project (push mode "project"): the review project next to the source, found by the marker
in its description and created on first use with the review config of connectors/review_config.py; review tasks
imported in one bulk request, each carrying the item's data and this round's relabel_* fields; duplicates a
late-landing write made (a second project, a second task) removed.
"""
from __future__ import annotations

import logging

from relabel import progress
from relabel.errors import ConnectorError

from connectors.label_config import LabelConfig
from connectors.label_studio_common import REVIEW_MARKER, prediction
from connectors.label_studio_writes import Writes
from connectors.records import PushedTask, ReviewRequest
from connectors.review_config import panel_data, review_label_config

log = logging.getLogger(__name__)

# Task data keys relabel writes start with this; a review task never copies the item's own relabel_* fields.
OWN_PREFIX = "relabel_"


class ReviewProject(Writes):
    """The source project's review project and the review tasks pushed into it."""

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

    def _review_listing(self, target: int, rounds=None) -> dict[tuple[str, int], list[dict]]:
        """Every relabel review task in ``target`` (of ``rounds`` only, when given), by (item, round); more than
        one means a duplicate."""
        out: dict[tuple[str, int], list[dict]] = {}
        for task in self._iter_tasks(target, fields="all", filters=_of_rounds(rounds)):
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
        rounds = sorted({int(r.round) for r in requests})
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
                                                   # Only this push's rounds: the listing is what it may
                                                   # duplicate, and the whole project grows every round.
                                                   lambda: self._review_listing(target, rounds),
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
            task["predictions"] = [prediction(request, config, preselect=True)]
        return task


def _of_rounds(rounds) -> dict | None:
    """A Data Manager filter for the review tasks of ``rounds`` (their ``data.relabel_round``); None for all."""
    if rounds is None:
        return None
    return {"conjunction": "or", "items": [{"filter": "filter:tasks:data.relabel_round", "operator": "equal",
                                            "type": "Number", "value": int(r)} for r in rounds]}
