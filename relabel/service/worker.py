"""The one background worker: keep the store up to date, and run a round when the policy says so.

Webhooks only wake it (they are acknowledged at once; Label Studio waits 1 s at most). Events that arrive
together are handled together: one pull (incremental by ``updated_at``) and one collect, however many
annotations changed. A reconcile runs at start-up and every ``reconcile_seconds`` whether or not webhooks
came, so a missed webhook only delays things. One round runs at a time: this thread is the only one that
starts rounds, and the store lock keeps a CLI `relabel round` from running beside it.

A failing step (Label Studio down, a full disk, a bug) is logged in one line, shown in /status.json, and retried
with doubling waits up to ``retry_max_seconds``; nothing is swallowed. :meth:`Worker.stop` lets the current step
finish (a round is resumable anyway) and then ends the thread.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from datetime import datetime, timezone

from relabel.config import Config
from relabel.errors import AnnotationError, StoreLocked
from relabel.loop.rounds import OPEN_STATUSES, Loop
from relabel.loop.store_schema import now
from relabel.service.policy import Situation, prefit_due, round_due
from relabel.service.webhooks import Event

log = logging.getLogger("relabel.serve")

# Events closer together than this are handled in one pull: a reviewer answering a batch sends one webhook per
# answer, a few hundred ms apart.
_QUIET_SECONDS = 0.5
# How often an idle worker wakes to look at the clock (the schedule policy) when nothing else wakes it.
_TICK_SECONDS = 30.0
_FIRST_RETRY_SECONDS = 1.0
# While a CLI command holds the store lock the worker looks again this often (that is not a failure).
_LOCKED_RETRY_SECONDS = 2.0
_POLL_SECONDS = 0.1

class Worker:
    """The service's background worker over one config (one store, one Label Studio project)."""

    def __init__(self, config: Config, *, loop_factory=None, ready: threading.Event | None = None):
        """``ready``: the worker starts working only once it is set (after --register connected the project)."""
        self.config = config
        self._ready = ready
        self.settings = config.serve
        self._loop_factory = loop_factory or (lambda: Loop.from_config(config))
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_reconcile = 0.0          # at start-up: at once
        self._lock = threading.Lock()       # guards the fields /status.json reads
        self.state, self.state_since = "starting", now()
        self.last_error: dict | None = None
        self.retries = 0
        self.rounds_started = 0
        self.last_trigger: str | None = None
        self.stopped: str | None = None
        self.new_annotations = 0
        self.webhooks_received = 0
        self._stopped_known = False

    # ---- control ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relabel-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the worker to stop after its current step and wait for it."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, event: Event) -> None:
        """Queue a webhook's event (called from the web server's thread; returns at once)."""
        with self._cond:
            self._events.append(event)
            self.webhooks_received += 1
            self._cond.notify_all()

    def reconcile_soon(self) -> None:
        with self._cond:
            self._next_reconcile = 0.0
            self._cond.notify_all()

    def snapshot(self) -> dict:
        """The worker's state for /status.json."""
        with self._lock, self._cond:
            return {"state": self.state, "since": self.state_since, "alive": self.alive,
                    "queued_events": len(self._events), "webhooks_received": self.webhooks_received,
                    "rounds_started": self.rounds_started, "last_trigger": self.last_trigger,
                    "stopped": self.stopped, "new_annotations_since_round": self.new_annotations,
                    "retries": self.retries, "last_error": self.last_error,
                    "trigger": list(self.settings.trigger)}

    # ---- the thread ---------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        with self._lock:
            if state != self.state:
                self.state, self.state_since = state, now()

    def _run(self) -> None:
        if self._ready is not None:
            self._set_state("waiting for registration")
            while not self._ready.wait(_POLL_SECONDS):
                if self._stopping.is_set():
                    self._set_state("stopped")
                    return
        loop = None
        backoff = _FIRST_RETRY_SECONDS
        step = "start"
        while not self._stopping.is_set():
            try:
                if loop is None:
                    step = "open the store"
                    loop = self._loop_factory()
                    # The loop lives from round to round here: each round's model is held for the next, which
                    # then re-scores instead of refitting while few labels changed (model_phase.hold_round_model).
                    loop.keep_round_model = True
                step = self._step(loop)
                backoff = _FIRST_RETRY_SECONDS
                with self._lock:
                    self.retries = 0
            except StoreLocked as exc:
                self._set_state("waiting for the store lock")
                log.info("worker: the store is locked by another relabel command (%s); trying again in %.0f s",
                         _one_line(exc), _LOCKED_RETRY_SECONDS)
                self._stopping.wait(_LOCKED_RETRY_SECONDS)
                continue
            except Exception as exc:  # logged, shown, retried: never swallowed
                with self._lock:
                    self.retries += 1
                    self.last_error = {"at": now(), "step": getattr(exc, "_relabel_step", step),
                                       "message": _one_line(exc), "type": type(exc).__name__,
                                       "retries": self.retries}
                log.error("worker: %s failed (retry %d in %.0f s): %s", self.last_error["step"], self.retries,
                          backoff, _one_line(exc))
                log.debug("worker: %s", "".join(traceback.format_exception(exc)).rstrip())
                self._set_state("retrying")
                if loop is not None:
                    loop.close()    # a fresh connector and store connection for the retry
                    loop = None
                self._next_reconcile = 0.0   # whatever the failed step had taken from the queue is pulled again
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, float(self.settings.retry_max_seconds))
                continue
            self._set_state("idle")
            self._wait_for_work()
        if loop is not None:
            loop.close()
        self._set_state("stopped")
        log.info("worker: stopped")

    def _wait_for_work(self) -> None:
        with self._cond:
            while not self._stopping.is_set() and not self._events:
                remaining = self._next_reconcile - time.monotonic()
                if remaining <= 0:
                    return
                if not self._cond.wait(min(remaining, _TICK_SECONDS)):
                    return      # woke on the clock: the schedule policy may be due
            if self._events:
                # Let a burst of webhooks finish before pulling once for all of them.
                while not self._stopping.is_set():
                    count = len(self._events)
                    self._cond.wait(_QUIET_SECONDS)
                    if len(self._events) == count:
                        break

    def _step(self, loop: Loop) -> str:
        """Bring the store up to date when something happened or a reconcile is due; then maybe run a round."""
        with self._cond:
            events, self._events = self._events, []
        reconcile = time.monotonic() >= self._next_reconcile
        source = self.config.label_studio.project
        # Answers in the review project change nothing in the source project: they need a collect, not a pull.
        source_changed = any(e.project in (None, source) for e in events)
        collected = None
        if source_changed or reconcile:
            self._set_state("pulling")
            why = f"{len(events)} webhooks" if events else "reconcile"
            pulled = _tagged(loop.pull, "pull")
            changed = pulled.new + pulled.changed + pulled.deleted
            with self._lock:
                self.new_annotations += changed
            log.log(logging.INFO if changed else logging.DEBUG, "worker: pulled (%s): %d new, %d changed, %d deleted "
                    "annotations", why, pulled.new, pulled.changed, pulled.deleted)
        if events or reconcile:
            if reconcile:
                self._next_reconcile = time.monotonic() + self.settings.reconcile_seconds
            if self._unanswered(loop):
                self._set_state("collecting")
                collected = _tagged(loop.collect, "collect")
                if collected.decisions:
                    log.info("worker: collected %d review answers (%d corrected)", collected.decisions,
                             collected.corrected)
        situation = self._situation(loop)
        reason = round_due(situation, self.settings)
        if reason is None:
            if prefit_due(situation) and hasattr(loop, "prefit"):
                # Reviewers are answering: fit the next round's model now, so that when the queue drains the
                # round only re-scores (relabel.models.fit.prefit_probs; the round takes it if few labels changed).
                self._set_state("fitting the next round's model")
                if _tagged(loop.prefit, "prefit"):
                    log.info("worker: fitted the next round's model while %d of %d review tasks are open",
                             situation.pushed - situation.answered, situation.pushed)
            return "check"
        self._set_state("running a round")
        with self._lock:
            self.last_trigger = reason
        log.info("worker: starting a round: %s", reason)
        try:
            # What this step collected a moment ago is handed on: the round need not read every review task again.
            summary = _tagged(functools.partial(loop.round, collected=collected) if collected is not None
                              else loop.round, "round")
        except AnnotationError as exc:
            # Not a failure of the service: the project cannot be scored yet (e.g. nothing labelled).
            with self._lock:
                self.stopped, self.new_annotations = _one_line(exc), 0
            log.warning("worker: no round: %s", _one_line(exc))
            return "round"
        self._after_round(summary)
        return "round"

    def _after_round(self, summary) -> None:
        unchanged = getattr(summary, "unchanged_reason", None)
        if unchanged:
            # No round was started (nothing new since the last one): wait for annotations to change.
            with self._lock:
                self.stopped, self.new_annotations = unchanged, 0
            log.info("worker: no new round: %s; waiting for annotations to change", unchanged)
            return
        pushed = summary.push.new if summary.push is not None else 0
        total = summary.push.total if summary.push is not None else 0
        stop = getattr(summary, "stop_reason", None)
        with self._lock:
            self.rounds_started += 1
            self.new_annotations = 0
            self.stopped = stop or (None if total else f"round {summary.round} found nothing to send to review")
        if self.stopped:
            log.info("worker: round %d stopped the loop: %s; waiting for annotations to change", summary.round,
                     self.stopped)
        else:
            log.info("worker: round %d pushed %d new review tasks (%d in the round)", summary.round, pushed, total)

    def _unanswered(self, loop: Loop) -> bool:
        answered = {(d["round"], d["task_id"]) for d in loop.store.decisions()}
        return any((t["round"], t["task_id"]) not in answered for t in loop.store.review_tasks())

    def _situation(self, loop: Loop) -> Situation:
        store = loop.store
        latest = store.latest_round()
        if latest is None:
            return Situation(None, False, 0, 0, self.new_annotations, None, None)
        rnd = latest["round"]
        tasks = store.review_tasks(rnd)
        answered = {d["task_id"] for d in store.decisions() if d["round"] == rnd}
        with self._lock:
            if not self._stopped_known:
                # After a restart: a finished round with nothing in it (pushed empty, or "stopped" by the stop
                # signal) had stopped the loop.
                self._stopped_known = True
                if latest["status"] not in OPEN_STATUSES and not tasks:
                    self.stopped = (latest.get("stop_reason")
                                    or f"round {rnd} found nothing to send to review")
            stopped, new = self.stopped, self.new_annotations
        return Situation(latest_round=rnd, open_round=latest["status"] in OPEN_STATUSES, pushed=len(tasks),
                         answered=sum(t["task_id"] in answered for t in tasks), new_annotations=new,
                         seconds_since_round=_seconds_since(latest.get("scored_at")), stopped=stopped)


def _tagged(step, name: str):
    """Run a Loop step; an exception remembers which step raised it, for the log and /status.json."""
    try:
        return step()
    except Exception as exc:
        exc._relabel_step = name
        raise


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
