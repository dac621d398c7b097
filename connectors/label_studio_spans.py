"""The Label Studio connector for span projects (issue 23): the source's tasks with their span annotations, the
span review project (each annotator's spans and the consensus as predictions), reviewers' answers, and the
write-back of the consensus as predictions. The JSON each piece sends is built in connectors/span_review.py and
read with connectors/span_records.py; this module only talks to Label Studio.

``SpanConnector.of(connector)`` turns the loop's LabelStudioConnector into one (same server, key and project):
the loop makes its connector before it knows the project's kind.
"""
from __future__ import annotations

import logging

from connectors.label_config import SpanConfig, parse_span_config
from connectors.label_studio import LabelStudioConnector
from connectors.span_review import CONSENSUS_VERSION, span_review_label_config
from relabel.errors import OutcomeUnknown

log = logging.getLogger(__name__)
WRITEBACK_PREFIX = "relabel-consensus-r"


class SpanConnector(LabelStudioConnector):
    """A LabelStudioConnector whose review project and reads are those of a span project."""

    @classmethod
    def of(cls, connector) -> "SpanConnector":
        if isinstance(connector, cls):
            return connector
        made = cls.__new__(cls)
        made.__dict__.update(connector.__dict__)
        return made

    def span_config(self) -> SpanConfig:
        return parse_span_config(self._project_json().get("label_config") or "", text_field=self._text_field)

    def review_config(self, show_suggestion: bool = False) -> str:
        return span_review_label_config(self._project_json().get("label_config") or "", self.span_config())

    def _with_names(self, tasks) -> list[dict]:
        """Tasks with each annotation's author as their email (annotations carry only the id)."""
        out = []
        for task in tasks:
            for annotation in task.get("annotations") or []:
                annotation["completed_by"] = {"email": self._annotator(annotation.get("completed_by"))}
            out.append(task)
        return out

    def source_tasks(self) -> list[dict]:
        """Every task of the source project with its annotations (and predictions), authors by email."""
        self._project_json(refresh=True)
        return self._with_names(self._iter_tasks(self.project_id, fields="all"))

    # ---- review -------------------------------------------------------------------------------------------
    def push_span_reviews(self, payloads: dict, round_number: int, *, preselect: bool) -> tuple[int, dict]:
        """Import the review tasks ``{item_id: task JSON}`` of a round that are not in the review project yet;
        returns (review project id, {item_id: review task id}). Idempotent: what is there is listed first, and
        listed again after a write whose outcome is unknown."""
        target = self.review_project_id(create=True)
        # Label Studio copies a prediction into the reviewer's answer only with show_collab_predictions on: off
        # unless [review] preselect (then the consensus, the project's model version, is pre-filled).
        self._request("PATCH", f"api/projects/{target}", write=True, project=target, json_body={
            "show_collab_predictions": bool(preselect), "model_version": CONSENSUS_VERSION if preselect else ""})
        chosen = self._drop_duplicates(target, self._review_listing(target))
        missing = [payloads[item] for item in payloads if (str(item), round_number) not in chosen]
        if missing:
            try:
                self._request("POST", f"api/projects/{target}/import", params={"return_task_ids": "true"},
                              json_body=missing, write=True, project=target)
            except OutcomeUnknown as exc:
                log.warning("Importing span review tasks: outcome unknown (%s); listing what landed.", exc)
            chosen = self._drop_duplicates(target, self._review_listing(target))
        return target, {item: chosen[(str(item), round_number)] for item in payloads
                        if (str(item), round_number) in chosen}

    def span_review_tasks(self) -> list[dict]:
        """Every task of the review project with its answers (authors by email); [] when there is none."""
        target = self.review_project_id()
        if target is None:
            return []
        return self._with_names(self._iter_tasks(target, fields="all"))

    # ---- write-back -----------------------------------------------------------------------------------------
    def write_span_predictions(self, predictions: list[dict], version: str, attempts: int = 3) -> tuple[int, int, int]:
        """Put the consensus predictions (``version``) on the source tasks that lack one of that version, delete
        earlier write-backs (older versions), and make ``version`` the project's model version (Label Studio
        shows and scores the current version). Returns (written, removed, unchanged)."""
        tasks = {t["id"]: t for t in self._iter_tasks(self.project_id, fields="all")}
        have, old = set(), []
        for task_id, task in tasks.items():
            for prediction in task.get("predictions") or []:
                if not isinstance(prediction, dict):
                    continue
                version_of = str(prediction.get("model_version") or "")
                if version_of == version:
                    have.add(task_id)
                elif version_of.startswith(WRITEBACK_PREFIX):
                    old.append(prediction.get("id"))
        send = [p for p in predictions if p["task"] in tasks and p["task"] not in have]
        if send:
            try:
                self._request("POST", f"api/projects/{self.project_id}/import/predictions", json_body=send,
                              write=True)
            except OutcomeUnknown:
                if attempts <= 1:
                    raise
                # Re-list and send only what did not land (a task that has this version has it).
                return self.write_span_predictions(predictions, version, attempts - 1)
        for prediction_id in old:
            if prediction_id is not None:
                self._request("DELETE", f"api/predictions/{prediction_id}", write=True, missing_ok=True)
        self._request("PATCH", f"api/projects/{self.project_id}", write=True, json_body={"model_version": version})
        return len(send), len([p for p in old if p is not None]), len(have)
