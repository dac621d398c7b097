"""Build Label Studio projects, users and annotations for tests, benchmarks and the demo.

Everything is written in bulk: one import call puts tasks, their annotations (owned by distinct users, never
ground truth) and predictions into a project, because annotations created one by one cost 85-300 ms each.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
import numpy as np
from label_studio_sdk import LabelStudio

from relabel.server import create_member

CLASSES = ("sport", "politics", "tech")
LABEL_TAG = "topic"
TEXT_FIELD = "text"
TEXT_TAG = "body"

# Words each class draws its texts from, so a text model can learn the classes from the texts.
_VOCABULARY = {
    "sport": "match goal team player coach league score season stadium referee cup final".split(),
    "politics": "election vote minister parliament policy senate party campaign law debate budget".split(),
    "tech": "software chip startup data cloud phone network code robot algorithm server".split(),
}
_FILLER = "the a today after new report says big first more people week".split()


def choices_config(classes=CLASSES, label_tag: str = LABEL_TAG, text_field: str = TEXT_FIELD,
                   text_tag: str = TEXT_TAG, extra: str = "") -> str:
    """A text classification labeling config: one Text tag, one single-choice Choices tag (+ ``extra`` XML)."""
    choices = "".join(f'<Choice value="{c}"/>' for c in classes)
    return (f'<View><Text name="{text_tag}" value="${text_field}"/>'
            f'<Choices name="{label_tag}" toName="{text_tag}" choice="single">{choices}</Choices>{extra}</View>')


def admin_client(url: str, api_key: str, **client_kwargs) -> LabelStudio:
    """An SDK client without HTTP keep-alive (the dev server stalls ~40 ms per kept-alive request)."""
    http = httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0), **client_kwargs)
    return LabelStudio(base_url=url, api_key=api_key, httpx_client=http)


def choice_result(label: str, label_tag: str = LABEL_TAG, to_name: str = TEXT_TAG) -> list[dict]:
    return [{"from_name": label_tag, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]


def annotation(user_id: int, label: str | None, *, skipped: bool = False, label_tag: str = LABEL_TAG,
               to_name: str = TEXT_TAG) -> dict:
    """An importable annotation by ``user_id``; ``skipped`` makes a cancelled one with an empty result."""
    if skipped:
        return {"result": [], "was_cancelled": True, "completed_by": user_id, "ground_truth": False}
    # Imported annotations default to ground_truth=True, which would mark every one of them as a gold label.
    return {"result": choice_result(label, label_tag, to_name), "completed_by": user_id, "ground_truth": False}


def make_text(label: str, rng: np.random.Generator, n_words: int = 12) -> str:
    """A short text mostly drawn from the class's words."""
    words = [rng.choice(_VOCABULARY[label]) if rng.random() < 0.6 else rng.choice(_FILLER) for _ in range(n_words)]
    return " ".join(str(w) for w in words)


def make_members(client: LabelStudio, prefix: str, n: int) -> list[tuple[int, str]]:
    """``n`` API-created users (annotation owners who need not log in): [(id, email)]."""
    emails = [f"{prefix}{i}@example.com" for i in range(n)]
    return [(create_member(client, email), email) for email in emails]


def make_project(client: LabelStudio, title: str, *, classes=CLASSES, extra_config: str = "",
                 tasks: list[dict] | None = None) -> int:
    """Create a project with a choices_config and import ``tasks`` (dicts with data/annotations/predictions)."""
    project = client.projects.create(title=title, label_config=choices_config(classes, extra=extra_config))
    if tasks:
        import_tasks(client, project.id, tasks)
    return project.id


def import_tasks(client: LabelStudio, project_id: int, tasks: list[dict]) -> list[int]:
    """Import tasks (with their annotations and predictions) in one call; return the new task ids in order."""
    response = client.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True,
                                            request_options={"max_retries": 0})
    return list(response.task_ids)


def answer_task(client: LabelStudio, task_id: int, label: str | None, user_id: int, *,
                skipped: bool = False) -> int:
    """Answer a (review) task as ``user_id``, as a reviewer in the UI would; return the annotation id."""
    if skipped:
        created = client.annotations.create(id=task_id, result=[], was_cancelled=True, completed_by=user_id,
                                            request_options={"max_retries": 0})
    else:
        created = client.annotations.create(id=task_id, result=choice_result(label), completed_by=user_id,
                                            ground_truth=False, request_options={"max_retries": 0})
    return created.id


@dataclass
class AcceptanceProject:
    """The issue-4 acceptance project and the truth behind it."""

    project_id: int
    classes: tuple[str, ...]
    task_ids: list[int]                      # in creation order
    true_labels: dict[int, str]              # task id -> true class
    texts: dict[int, str]
    annotators: dict[str, int]               # email -> user id
    accuracy: dict[str, float]               # email -> planted probability of a right label
    labels: dict[int, list[tuple[str, str]]] = field(default_factory=dict)   # task -> [(email, label)]
    skipped: dict[int, list[str]] = field(default_factory=dict)              # task -> [email] who skipped
    unlabelled: list[int] = field(default_factory=list)                      # tasks with no annotation at all
    disagreements: list[int] = field(default_factory=list)                   # tasks whose labels differ

    @property
    def n_annotations(self) -> int:
        """Non-skipped annotations."""
        return sum(len(v) for v in self.labels.values())

    def counts_per_annotator(self) -> dict[str, int]:
        counts = {email: 0 for email in self.annotators}
        for pairs in self.labels.values():
            for email, _ in pairs:
                counts[email] += 1
        return counts

    def wrong_majority(self) -> list[int]:
        """Tasks whose plurality label (ties broken by class order) is not the true class: planted errors."""
        wrong = []
        for task, pairs in self.labels.items():
            votes = [sum(label == c for _, label in pairs) for c in self.classes]
            if pairs and self.classes[int(np.argmax(votes))] != self.true_labels[task]:
                wrong.append(task)
        return wrong


def build_acceptance_project(client: LabelStudio, *, title: str = "relabel acceptance", n_tasks: int = 300,
                             accuracy=(0.92, 0.88, 0.8, 0.55), n_unlabelled: int = 15, p_skip: float = 0.05,
                             seed: int = 0, email_prefix: str | None = None) -> AcceptanceProject:
    """300 text tasks, 4 annotators who are distinct users, 2-3 labels per task with planted disagreements,
    some skipped annotations and some unlabelled tasks, imported in one call. Returns the truth.

    Each annotator labels right with its planted ``accuracy`` and otherwise picks a wrong class uniformly, so
    the last, careless annotator plants most of the disagreements and errors.
    """
    rng = np.random.default_rng(seed)
    prefix = email_prefix or f"annotator-s{seed}-p"
    rng.integers(10**9)  # kept so that every seed's data stays as it was
    # Emails must be unique on the session's server, whichever seeds other tests pick (one derives its seed from
    # a hash of its name): a random part, not the seed, keeps two projects from asking for the same user.
    members = make_members(client, f"{prefix}{uuid.uuid4().hex[:10]}-", len(accuracy))
    emails = [email for _, email in members]
    ids = {email: uid for uid, email in members}
    classes = CLASSES
    truth = rng.integers(len(classes), size=n_tasks)
    unlabelled = set(rng.choice(n_tasks, size=n_unlabelled, replace=False).tolist())
    tasks, plan = [], []
    for i in range(n_tasks):
        label = classes[truth[i]]
        text = make_text(label, rng)
        entry = {"data": {TEXT_FIELD: text}, "annotations": []}
        labels, skipped = [], []
        if i not in unlabelled:
            chosen = rng.choice(len(emails), size=int(rng.integers(2, 4)), replace=False)
            for a in sorted(chosen.tolist()):
                email = emails[a]
                if rng.random() < p_skip:
                    entry["annotations"].append(annotation(ids[email], None, skipped=True))
                    skipped.append(email)
                    continue
                if rng.random() < accuracy[a]:
                    given = label
                else:
                    given = classes[(truth[i] + int(rng.integers(1, len(classes)))) % len(classes)]
                entry["annotations"].append(annotation(ids[email], given))
                labels.append((email, given))
        tasks.append(entry)
        plan.append((label, text, labels, skipped))
    project = client.projects.create(title=title, label_config=choices_config(classes))
    task_ids = import_tasks(client, project.id, tasks)
    result = AcceptanceProject(project_id=project.id, classes=classes, task_ids=task_ids,
                               true_labels={}, texts={}, annotators=ids,
                               accuracy=dict(zip(emails, accuracy)))
    for i, (task_id, (label, text, labels, skipped)) in enumerate(zip(task_ids, plan)):
        result.true_labels[task_id] = label
        result.texts[task_id] = text
        result.labels[task_id] = labels
        if skipped:
            result.skipped[task_id] = skipped
        if i in unlabelled:
            result.unlabelled.append(task_id)
        if len({given for _, given in labels}) > 1:
            result.disagreements.append(task_id)
    return result
