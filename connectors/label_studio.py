"""Label Studio connector: pull annotations, push review tasks, collect reviewers' answers.

Works with Label Studio Community and Enterprise through label-studio-sdk 2.x, with a legacy token or a personal
access token (JWT refresh token; the SDK exchanges it for short-lived access tokens itself). The API key is
given by the caller and never stored or logged.

``LabelStudioConnector`` is the one class users and the loop use; it is composed of parts that each live in
their own module:
- connectors/label_studio_api.py: the plumbing (one API call as JSON, the project, its config, users, tasks);
- connectors/label_studio_reads.py and connectors/label_studio_pull.py: describe and pull the source project;
- connectors/label_studio_writes.py: writes re-checked after an unknown outcome, and the task-field writeback;
- connectors/label_studio_review.py: the review project (push mode "project");
- connectors/label_studio_in_place.py: review on the source's own tasks (push mode "in_place");
- connectors/label_studio_answers.py: collecting reviewers' answers and assigning tasks;
- connectors/label_studio_errors.py and connectors/label_studio_common.py: error translation and the JSON
  helpers they all share.

Why it looks the way it does (see docs/LABEL_STUDIO.md):
- HTTP keep-alive is off: the Django dev server stalls ~40 ms on every kept-alive request, which dominates
  when a push or a collect makes many small calls.
- Retries live in one place, the HTTP transport (connectors/http.py): idempotent requests are retried on
  resets, timeouts, 502/503/504 and 429; a POST only when it never left. The SDK's own retries are off for
  every request, so nothing is retried twice over and a POST whose outcome is unknown is never blindly re-sent.
  Every write is instead idempotent at our level: before importing, and again after any error, the target is
  listed for what a previous (possibly killed, possibly still in flight) push already created, and only what
  is missing is sent (see ``_push_project`` and ``_write_missing``).
- Reads go through the SDK's authenticated HTTP client but are decoded as plain JSON: a pull of 10,000 tasks
  would otherwise build 40,000 pydantic objects only to read five fields of each.
"""
from __future__ import annotations

from relabel.errors import ConfigError, InputError, preview

from connectors.label_config import LabelConfig
from connectors.label_studio_answers import ReviewAnswers
from connectors.label_studio_api import DEFAULT_TIMEOUT, NO_RETRY, PAGE_SIZE
from connectors.label_studio_common import REVIEW_MARKER, model_version, review_of
from connectors.label_studio_errors import API_KEY_VARIABLE
from connectors.label_studio_in_place import InPlaceReview, view_title
from connectors.label_studio_reads import ProjectReads
from connectors.label_studio_review import OWN_PREFIX, ReviewProject
from connectors.label_studio_writes import FINAL_FIELD
from connectors.records import PushedTask, ReviewRequest

__all__ = ["API_KEY_VARIABLE", "DEFAULT_TIMEOUT", "FINAL_FIELD", "MODES", "NO_RETRY", "OWN_PREFIX", "PAGE_SIZE",
           "REVIEW_MARKER", "LabelStudioConnector", "model_version", "review_of", "view_title"]

MODES = ("project", "in_place")


class LabelStudioConnector(ProjectReads, ReviewProject, InPlaceReview, ReviewAnswers):
    """One Label Studio project, seen through the Connector protocol of connectors/records.py.

    Constructed as ``LabelStudioConnector(url, api_key, project_id, *, label_tag=None, text_field=None,
    timeout=DEFAULT_TIMEOUT, httpx_client=None, after_import=None)`` (see connectors/label_studio_api.py).
    ``after_import`` is a fault-injection hook for tests: when set, it is called right after a push's import
    request returned and before anything else, so a test can simulate a process killed at that moment.
    """

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


def _check_requests(requests: list[ReviewRequest], config: LabelConfig, mode: str) -> None:
    if config.multiple:
        unknown = [r.item_id for r in requests if not set(r.suggested_labels or ()) <= set(config.classes)]
    else:
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
