"""When the service starts a round by itself: the [serve] trigger policy, as one pure function.

    drained      every review task of the latest round was answered or skipped
    annotations  at least ``new_annotations`` annotations were added or changed since the latest round
    schedule     ``every_minutes`` passed since the latest round was scored

A round left half way (scored or selected, not pushed) is always resumed first, and with no round yet the
first one is due at once. A round that pushed nothing (the stop signal, nothing left worth reviewing, nothing
changed) stops the loop until annotations change again: otherwise "drained" would hold forever and the
service would score round after identical round.
"""
from __future__ import annotations

from dataclasses import dataclass

from relabel.config import ServeSettings


@dataclass(frozen=True)
class Situation:
    """What the worker knows after bringing the store up to date."""

    latest_round: int | None
    open_round: bool                # the latest round is scored or selected but not pushed
    pushed: int                     # review tasks of the latest round
    answered: int                   # of which answered or skipped
    new_annotations: int            # annotations added or changed since the latest round (seen by this worker)
    seconds_since_round: float | None
    stopped: str | None             # why the latest round ended the loop, or None


def round_due(s: Situation, settings: ServeSettings) -> str | None:
    """Why a round should start now, or None."""
    if s.open_round:
        return f"round {s.latest_round} was left half way"
    if s.latest_round is None:
        return "no round yet"
    if s.stopped is not None:
        if s.new_annotations == 0:
            return None
        if "drained" in settings.trigger:
            return f"{s.new_annotations} annotations changed since round {s.latest_round} stopped ({s.stopped})"
    if "drained" in settings.trigger and s.pushed > 0 and s.answered >= s.pushed:
        return f"all {s.pushed} review tasks of round {s.latest_round} were answered"
    if "annotations" in settings.trigger and s.new_annotations >= settings.new_annotations:
        return f"{s.new_annotations} annotations changed since round {s.latest_round}"
    if ("schedule" in settings.trigger and s.seconds_since_round is not None
            and s.seconds_since_round >= settings.every_minutes * 60):
        return f"{settings.every_minutes} minutes since round {s.latest_round}"
    return None


def prefit_due(s: Situation) -> bool:
    """Whether to fit the next round's model now: the latest round's review tasks are being answered (some, not
    all). Loop.prefit then fits only if the model it holds would no longer be taken by the round."""
    return (s.latest_round is not None and not s.open_round and s.stopped is None and s.pushed > 0
            and 0 < s.answered < s.pushed)
