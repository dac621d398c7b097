"""Loaders for the real multi-annotator data in shared/data (never committed; see shared/data/README.md).

    from benchmarks.shared_data import load_cifar10n, default_data_dir
    annotations, clean, pred_probs = load_cifar10n(default_data_dir())
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from relabel.scoring.annotations import Annotations

REPO = Path(__file__).resolve().parents[1]
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10N_MODELS = ("resnet18", "resnet50d", "efficientnet_b1", "twins_pcpvt_base", "swin_base_patch4_window7_224")


def default_data_dir() -> Path:
    """RELABEL_SHARED_DATA if set, else ../shared/data beside the repository (read at call time)."""
    return Path(os.environ.get("RELABEL_SHARED_DATA", REPO.parent / "shared" / "data"))


def label_errors_dir() -> Path:
    """The label_errors folder of the shared data (the text sets the model benchmarks read)."""
    return default_data_dir() / "label_errors"


def proc_status_mb(field: str) -> float:
    """VmRSS (current) or VmHWM (peak) of this process in MiB, from /proc/self/status (Linux).

    Not resource.getrusage: Linux carries ru_maxrss across execve, so a child would report the RSS its parent
    had when it forked. VmHWM belongs to the child's own address space.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def load_cifar10n(data_dir) -> tuple[Annotations, np.ndarray, dict[str, np.ndarray]]:
    """CIFAR-10N: 50,000 images x 3 of 747 human workers, the clean labels, and 5 models' pred_probs.

    Returns ``(annotations, clean_labels, pred_probs_by_model)``. ``annotations`` has one row per human label
    (150,000), items = image index 0..49999 (the row order of every pred_probs array), annotators = worker ids
    (ints, ascending), classes = the CIFAR-10 class names. Worker k of a row of ``side_info_cifar10N.csv``
    gave ``random_label<k>`` for that row's batch of images (the pairing the data README documents).
    ``pred_probs_by_model`` maps each model name of ``pred_probs_aggre/`` (trained on the majority vote,
    5-fold out-of-sample) to its 50000 x 10 float64 array.
    ``data_dir`` is the shared data folder (containing ``cifar10n/``) or ``cifar10n/`` itself.
    """
    import pandas as pd  # benchmarks only; the relabel core does not need pandas

    folder = Path(data_dir)
    if (folder / "cifar10n").is_dir():
        folder = folder / "cifar10n"
    if not (folder / "CIFAR-10_human.npy").is_file():
        raise FileNotFoundError(f"CIFAR-10N not found in {folder}; pass the shared data folder (--data-dir or "
                                "RELABEL_SHARED_DATA).")
    human = np.load(folder / "CIFAR-10_human.npy", allow_pickle=True).item()
    clean = np.asarray(human["clean_label"], dtype=np.intp)
    n_items = clean.shape[0]
    side = pd.read_csv(folder / "side_info_cifar10N.csv")
    bounds = side["Image-batch"].str.split("--", expand=True).astype(np.intp).to_numpy()
    batch_size = bounds[:, 1] - bounds[:, 0] + 1
    images = np.concatenate([np.arange(a, b + 1) for a, b in bounds])  # image indices, batch by batch
    items, workers, labels = [], [], []
    for k in (1, 2, 3):
        given = np.asarray(human[f"random_label{k}"], dtype=np.intp)
        items.append(images)
        workers.append(np.repeat(side[f"Worker{k}-id"].to_numpy(), batch_size))
        labels.append(given[images])
    item = np.concatenate(items)
    worker = np.concatenate(workers)
    annotator_ids, annotator = np.unique(worker, return_inverse=True)
    annotations = Annotations(item, annotator.astype(np.intp), np.concatenate(labels), np.arange(n_items),
                              annotator_ids, CIFAR10_CLASSES)
    per_item = annotations.num_annotations()
    if not (per_item == 3).all():
        raise ValueError(f"CIFAR-10N side info should cover every image exactly 3 times; {int((per_item != 3).sum())} "
                         "images differ: the data folder is incomplete or changed.")
    pred_probs = {}
    for model in CIFAR10N_MODELS:
        path = folder / "pred_probs_aggre" / model / "pred_probs.npy"
        if path.is_file():
            pred_probs[model] = np.load(path)
    return annotations, clean, pred_probs


CROWD_SETS = ("adult_content2", "labelme", "trec_rf10")
SNOW_SETS = ("rte", "temp", "wsd")


def load_crowd(data_dir, name: str) -> tuple[Annotations, np.ndarray]:
    """One set of ``crowd/`` (answer.csv, truth.csv, classes.csv): ``(annotations, truth)``.

    ``truth`` has one class index per item of ``annotations`` and -1 where the set has no ground truth.
    """
    import pandas as pd

    folder = Path(data_dir) / "crowd" / name
    answers = pd.read_csv(folder / "answer.csv", dtype={"question": str, "worker": str})
    classes = pd.read_csv(folder / "classes.csv")
    names = tuple(str(c) for c in classes.sort_values("code")["name"])
    a = Annotations.from_records(answers["question"].to_numpy(), answers["worker"].to_numpy(),
                                 np.asarray(names, dtype=object)[answers["answer"].to_numpy()], classes=names)
    truth_df = pd.read_csv(folder / "truth.csv", dtype={"question": str})
    truth = pd.Series(truth_df["truth"].to_numpy(), index=truth_df["question"]).reindex(
        [str(i) for i in a.item_ids])
    return a, truth.fillna(-1).to_numpy().astype(np.intp)


def load_snow(data_dir, name: str) -> tuple[Annotations, np.ndarray]:
    """One Snow et al. 2008 set (rte, temp, wsd): ``(annotations, gold)`` with one gold class per item."""
    import pandas as pd

    df = pd.read_csv(Path(data_dir) / "snow2008" / f"{name}.standardized.tsv", sep="\t")
    classes = sorted(df["response"].unique().tolist())
    a = Annotations.from_records(df["orig_id"].to_numpy(), df["!amt_worker_ids"].to_numpy(),
                                 df["response"].to_numpy(), classes=classes)
    gold = df.groupby("orig_id")["gold"].first().reindex(a.item_ids).map(classes.index).to_numpy()
    return a, gold.astype(np.intp)
