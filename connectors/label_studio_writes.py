"""Writing to Label Studio without duplicates: a write whose outcome is unknown (its answer lost, the process
killed) is re-checked, after what is there stops changing, before only what is missing is sent again
(``_settled``, ``_write_missing``); the project's model version; and the writeback of a task data field
(``write_task_field``, used by relabel/loop/writeback.py).

Retries of idempotent requests are the transport's (connectors/http.py); a POST is never blindly re-sent.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from relabel import progress
from relabel.errors import ConnectorError, OutcomeUnknown

from connectors.label_studio_api import LabelStudioApi
from connectors.label_studio_common import advancing, model_version

log = logging.getLogger(__name__)

# The task data field `relabel writeback` fills with an item's final label (see relabel/loop/writeback.py).
FINAL_FIELD = "relabel_final"
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


class Writes(LabelStudioApi):
    """Writes that are idempotent at relabel's level, whatever became of an earlier attempt."""

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

    def _ensure_model_version(self, project_id: int, round_number: int) -> None:
        # predictions_score only counts predictions whose model_version is the project's: without this the
        # Data Manager cannot sort the round by quality. A PATCH of an absolute value: safe to retry.
        wanted = model_version(round_number)
        if self._project_json(project_id, refresh=True).get("model_version") != wanted:
            self._request("PATCH", f"api/projects/{project_id}", json_body={"model_version": wanted},
                          write=True, project=project_id)

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
