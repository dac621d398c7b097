"""The round's model inputs from the store, the cache kept beside the store, and the model fitted ahead.

``model_inputs`` is what a round trains on: the majority vote of each labelled item, overridden by reviewers'
decisions (gold), optionally weighted by annotator agreement. ``model_cache_for`` is the
relabel.models.model_cache.ModelCache of a store (its folder ``<store>.model-cache``), so that a round reuses the
last round's n-gram counts and chosen pipeline. ``prefit`` fits the next round's model now, from the store as it
is (relabel serve calls it while reviewers answer): the round then takes that model if few labels changed since.
``hold_round_model`` (relabel serve only, ``LoopState.keep_round_model``) holds a round's own model for the next
round the same way, with the labels it was fitted on.
"""
from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass

import numpy as np

from relabel.scoring.annotations import Annotations
from relabel.scoring.consensus import get_majority_vote_label


@dataclass
class ModelInputs:
    train: np.ndarray            # class index per item (-1 = unlabelled)
    settings: object             # relabel.models.fit.ModelSettings
    weight: np.ndarray | None    # per item, with [model] weight_uncertain
    rows: np.ndarray             # labelled item -> row in the items
    reviewed: np.ndarray         # bool per item
    final: np.ndarray            # reviewers' label per item (-1 = none)
    texts: list                  # the items' texts ("" for none)


def model_inputs(table: Annotations, item_ids: list[str], texts: list, reviewer_labels: dict[str, str],
                 model) -> ModelInputs:
    """What the round's model is trained on (see the module docstring)."""
    from relabel.models.fit import ModelSettings  # the model stack loads only when scoring
    classes = table.classes
    position = {c: i for i, c in enumerate(classes)}
    where = {iid: n for n, iid in enumerate(item_ids)}
    rows = np.array([where[str(i)] for i in table.item_ids], dtype=np.intp)
    n = len(item_ids)
    reviewed = np.zeros(n, dtype=bool)
    final = np.full(n, -1, dtype=np.intp)
    for iid, label in reviewer_labels.items():
        if iid in where and label in position:
            reviewed[where[iid]] = True
            final[where[iid]] = position[label]
    # The model learns from the majority vote (cheap, no pred_probs needed), overridden by reviewers' labels.
    train = np.full(n, -1, dtype=np.intp)
    majority = get_majority_vote_label(table)
    train[rows] = majority
    train[reviewed] = final[reviewed]
    settings = model if isinstance(model, ModelSettings) else ModelSettings.from_dict(model)
    weight = None
    if settings.weight_uncertain:
        # Optional: an item counts as much as its annotators agree with the majority (2 of 3 -> 0.67); reviewers'
        # decisions are gold and count fully.
        weight = np.ones(n)
        agree = np.bincount(table.item, weights=(table.label == majority[table.item]), minlength=table.n_items)
        weight[rows] = agree / np.maximum(np.bincount(table.item, minlength=table.n_items), 1)
        weight[reviewed] = 1.0
    return ModelInputs(train, settings, weight, rows, reviewed, final,
                       [t if t is not None else "" for t in texts])


def model_cache_for(store):
    """The ModelCache beside ``store`` (in memory for an in-memory store)."""
    from relabel.models.model_cache import ModelCache
    path = str(getattr(store, "path", ":memory:"))
    return ModelCache() if path == ":memory:" else ModelCache.beside(path)


def prefit(store, model, cache) -> bool:
    """Fit the next round's model on the store as it is and hold it in ``cache``; False (nothing fitted) when the
    project cannot be scored yet or the model ``cache`` holds would still be taken by the round."""
    from relabel.models.fit import prefit_probs
    from relabel.models.search import settings_key
    table, _ = store.scoring_table()
    if len(table) == 0 or np.unique(table.label).size < 2:
        return False
    item_ids, texts = store.item_texts()
    inputs = model_inputs(table, item_ids, texts, store.final_labels(), model)
    if inputs.settings.pred_probs_path:
        return False        # the user's probabilities: nothing to fit
    key = settings_key(inputs.settings, len(table.classes))
    if cache.holds_prefit(key, item_ids, inputs.texts, inputs.train):
        return False
    result = prefit_probs(item_ids, inputs.texts, inputs.train, len(table.classes), inputs.settings, reuse=cache,
                          cache=store, sample_weight=inputs.weight)
    _HELD[cache] = _Held(result, inputs.train.copy())
    return True


@dataclass
class _Held:
    result: object               # the ModelResult held in the cache for the next round
    labels: np.ndarray           # the labels it was fitted on (class index per item, -1 = unlabelled)


# What each ModelCache holds for the next round, and on which labels it was fitted: a round that takes a held model
# and holds it again must hold it with those labels, not its own, or the labels could drift from the ones the
# model learnt from by the reuse tolerance every round instead of once.
_HELD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_FITTED_AHEAD_NOTE = "fitted ahead while reviewers answered"


def hold_round_model(cache, inputs: ModelInputs, n_classes: int, item_ids: list, fitted):
    """Hold the round's model in ``cache`` for the next round (relabel serve, so that the round after the last
    review answer re-scores instead of refitting while the labels changed since stay within the chosen pipeline's
    reuse tolerance: the same rule as a model fitted ahead). Returns the round's ModelResult, with the note of a
    reused model saying where it came from."""
    from relabel.models.search import settings_key
    if fitted.report is None or inputs.settings.pred_probs_path:
        return fitted
    before = _HELD.get(cache)
    reused = before is not None and fitted is before.result
    labels = before.labels if reused else inputs.train.copy()
    if reused:
        changed = int((np.asarray(inputs.train) != labels).sum())
        notes = [n for n in fitted.report.notes if not n.startswith(_FITTED_AHEAD_NOTE)]
        notes.append(f"{_FITTED_AHEAD_NOTE} or in an earlier round, on labels that differ from this round's in "
                     f"{changed} items, within the pipeline's reuse tolerance: re-scored without refitting")
        fitted = dataclasses.replace(fitted, report=dataclasses.replace(fitted.report, notes=notes))
    # A copy is held: the next round appends its own note to what it takes, not to this round's report.
    held = dataclasses.replace(fitted, report=dataclasses.replace(
        fitted.report, notes=[n for n in fitted.report.notes if not n.startswith(_FITTED_AHEAD_NOTE)]))
    cache.hold_prefit(settings_key(inputs.settings, n_classes), item_ids, inputs.texts, labels, held)
    _HELD[cache] = _Held(held, labels)
    return fitted
