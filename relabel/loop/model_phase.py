"""The round's model inputs from the store, the cache kept beside the store, and the model fitted ahead.

``model_inputs`` is what a round trains on: the majority vote of each labelled item, overridden by reviewers'
decisions (gold), optionally weighted by annotator agreement. ``model_cache_for`` is the
relabel.models.model_cache.ModelCache of a store (its folder ``<store>.model-cache``), so that a round reuses the
last round's n-gram counts and chosen pipeline. ``prefit`` fits the next round's model now, from the store as it
is (relabel serve calls it while reviewers answer): the round then takes that model if few labels changed since.
"""
from __future__ import annotations

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
    prefit_probs(item_ids, inputs.texts, inputs.train, len(table.classes), inputs.settings, reuse=cache, cache=store,
                 sample_weight=inputs.weight)
    return True
