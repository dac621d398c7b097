"""How many review tasks a round pushes: `[review] budget` is the number of open review tasks to keep.

A round pushes ``budget - open`` new tasks, where open means pushed and not answered yet. A daily cron job then
keeps the reviewers' queue at the budget instead of stacking a full batch on top of whatever is still open (18
open + 50 new = 68 before issue 20). A skipped or disputed item counts as open until the next round re-queues it:
that round sends it again at the top of its batch (relabel.scoring.selection), as one of the ``budget - open``.
``--add N`` pushes N more whatever is open, for the rare time a lead wants a bigger queue once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopUp:
    """What a push adds: ``budget`` open tasks to keep, ``open`` before the push, ``add`` (``--add N``) or None."""

    budget: int
    open: int
    add: int | None = None

    @property
    def to_push(self) -> int:
        if self.add is not None:
            return max(0, int(self.add))
        return max(0, int(self.budget) - int(self.open))

    def describe(self, new: int | None = None) -> str:
        """'10 still open, budget 20: 10 new' / 'nothing pushed: 20 review tasks still open (budget 20)'."""
        pushed = self.to_push if new is None else new
        if self.add is not None:
            return f"{self.open} were open, --add {self.add}: {pushed} new, {self.open + pushed} open"
        if pushed == 0:
            return (f"nothing pushed: {self.open} review {'task' if self.open == 1 else 'tasks'} still open (budget "
                    f"{self.budget}; `relabel round --add N` pushes N more)")
        return f"{self.open} still open, budget {self.budget}: {self.open + pushed} open"

    def as_dict(self) -> dict:
        return {"budget": self.budget, "open_before": self.open, "add": self.add, "to_push": self.to_push}
