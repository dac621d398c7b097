"""What each step of a relabel round reports: the summaries Loop's steps return (and `relabel --json` prints)."""
from __future__ import annotations

from dataclasses import dataclass, field

from relabel.loop.store_pull import PullSummary
from relabel.loop.queue import TopUp
from relabel.scoring.error_estimate import ExpectedErrors, format_expected
from relabel.scoring.stop_signal import BatchEstimate


@dataclass(frozen=True)
class ScoreSummary:
    """What scoring a round computed."""

    round: int
    method: str                 # "model-dawid-skene" (relabel's default consensus, see relabel/scoring/consensus_em.py)
    items: int
    labelled_items: int
    annotations: int
    annotators: int
    label_issues: int
    expected_remaining_errors: float
    notes: tuple[str, ...] = ()
    model: str | None = None    # the chosen pipeline and its cross-validated scores (ModelReport.summary)
    expected_low: int | None = None       # the 90% interval of expected_remaining_errors
    expected_high: int | None = None
    overrides: int = 0                    # consensus labels that none of the item's annotators gave
    # may the model change final labels, and why (relabel/scoring/override_evidence.py, OverrideEvidence.as_dict)
    override_evidence: dict | None = None

    @property
    def overrides_text(self) -> str:
        """'Overrides earned: ...' / 'Overrides off (too little evidence): ...' (regime_sentence)."""
        from relabel.scoring.override_evidence import regime_sentence
        return regime_sentence(self.override_evidence)

    @property
    def expected_text(self) -> str:
        """ "≈ N (90% interval a–b)" """
        return format_expected(self.expected_remaining_errors, self.expected_low, self.expected_high)


@dataclass(frozen=True)
class PushSummary:
    """What a push did: review tasks created now and the round's total."""

    round: int
    mode: str
    selected: int
    new: int
    total: int
    stop_reason: str | None = None        # why nothing was pushed (the stop signal), None when it pushed
    batch: BatchEstimate | None = None    # the stop signal's estimate for the items sent (None: not computed now)
    top_up: TopUp | None = None           # how many it added to keep [review] budget tasks open (relabel/loop/queue.py)
    expected_total: ExpectedErrors | None = None   # the total left, restated with the batch's estimate (or None)
    audit: int = 0                        # of the ``selected``, the audit items drawn at random (on top of the budget)
    left: str | None = None               # "≈ 41 wrong labels left (90% interval 22–68), from 57 audited items"


@dataclass(frozen=True)
class CollectSummary:
    """Reviewers' answers turned into decisions (relabel/loop/decisions.py says what counts).

    ``decisions`` are new decisions, ``changed`` decisions a reviewer edited to another label since the last
    collect; ``confirmed``/``corrected``/``skipped``/``disputed`` count the outcomes of both; ``ordinary`` counts
    new or changed answers by people who are not reviewers (kept as annotations).
    """

    decisions: int
    confirmed: int
    corrected: int
    skipped: int
    changed: int = 0
    disputed: int = 0
    ordinary: int = 0
    notes: tuple[str, ...] = ()       # e.g. a review project deleted in Label Studio
    forgotten: int = 0                # unanswered review tasks of deleted review projects, to push again


@dataclass(frozen=True)
class RoundSummary:
    """Everything one `relabel round` did, step by step."""

    round: int
    resumed: bool
    collect: CollectSummary | None = None
    pull: PullSummary | None = None
    score: ScoreSummary | None = None
    push: PushSummary | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)
    stop_reason: str | None = None        # why the round pushed nothing (the stop signal); None when it pushed
    # Set when the round was not started because nothing changed since the last one ("nothing changed since
    # round 4; 30 review tasks still open"); ``round`` is then that last round. Read by the plugin service.
    unchanged_reason: str | None = None
    notes: tuple[str, ...] = ()       # e.g. the annotations the round leaves out, and why
