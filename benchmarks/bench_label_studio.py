"""How long the Label Studio connector takes and how many HTTP requests it makes, against a private server.

    .venv/bin/python benchmarks/bench_label_studio.py                 # 10,000 tasks x 3 annotations, 1,000 pushed
    .venv/bin/python benchmarks/bench_label_studio.py --tasks 2000 --push 200 --server-dir /tmp/ls

It starts its own Label Studio (first start on an empty --server-dir runs migrations, 30-70 s; a reused dir starts
in seconds), builds a project in bulk, then times:
  pull:  the connector's full pull (one GET of the export endpoint) and its incremental path (the tasks list
         filtered on updated_at, plain JSON, 1,000 per page, keep-alive off) asked for everything, against the
         SDK's own tasks.list(fields="all") iterator with its default client;
  push:  the connector's push of review tasks into a review project (one bulk import), against creating the same
         review tasks one by one with the SDK (timed on a sample and reported per task);
  in place: a push in place (one predictions import + one PATCH per task for overlap + a saved view).
Requests are counted with httpx event hooks on each client.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from label_studio_sdk import LabelStudio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from connectors.label_studio import LabelStudioConnector  # noqa: E402
from connectors.records import ReviewRequest  # noqa: E402
from label_studio_helpers import (CLASSES, TEXT_FIELD, annotation, choices_config, make_members,  # noqa: E402
                                  make_text)
from relabel.server import start_label_studio  # noqa: E402

IMPORT_CHUNK = 2000  # tasks per import call while building the project


class Counter:
    """Counts requests through an httpx event hook."""

    def __init__(self):
        self.n = 0

    def __call__(self, request):
        self.n += 1

    def client(self, keep_alive: bool = False) -> httpx.Client:
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(timeout=600, limits=limits, event_hooks={"request": [self]})


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def build(client: LabelStudio, n_tasks: int, n_annotators: int, per_task: int, seed: int) -> tuple[int, list[int], list[str]]:
    rng = np.random.default_rng(seed)
    members = make_members(client, f"bench{time.time_ns()}-", n_annotators)
    project = client.projects.create(title=f"bench {n_tasks}", label_config=choices_config())
    truth = rng.integers(len(CLASSES), size=n_tasks)
    task_ids, texts = [], []
    for start in range(0, n_tasks, IMPORT_CHUNK):
        tasks = []
        for i in range(start, min(n_tasks, start + IMPORT_CHUNK)):
            text = make_text(CLASSES[truth[i]], rng)
            texts.append(text)
            who = rng.choice(n_annotators, size=per_task, replace=False)
            labels = [CLASSES[truth[i]] if rng.random() < 0.8 else CLASSES[rng.integers(len(CLASSES))] for _ in who]
            tasks.append({"data": {TEXT_FIELD: text},
                          "annotations": [annotation(members[w][0], lab) for w, lab in zip(who, labels)]})
        response = client.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True,
                                                request_options={"max_retries": 0})
        task_ids.extend(response.task_ids)
    return project.id, task_ids, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--per-task", type=int, default=3)
    parser.add_argument("--push", type=int, default=1000, help="review tasks pushed to a review project")
    parser.add_argument("--naive-sample", type=int, default=50, help="review tasks created one by one (baseline)")
    parser.add_argument("--in-place", type=int, default=200, help="tasks pushed in place (one PATCH each)")
    parser.add_argument("--server-dir", default=None, help="Label Studio data dir (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="relabel-bench-ls-") as tmp:
        data_dir = Path(args.server_dir) if args.server_dir else Path(tmp)
        (server, start_s) = timed(lambda: start_label_studio(data_dir, username="admin@example.com",
                                                             password="bench-admin-pass"))
        with server:
            print(f"server start: {start_s:.1f} s ({server.url})")
            admin = LabelStudio(base_url=server.url, api_key=server.api_key,
                                httpx_client=httpx.Client(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)))
            (project_id, task_ids, texts), build_s = timed(
                lambda: build(admin, args.tasks, args.annotators, args.per_task, args.seed))
            n_ann = args.tasks * args.per_task
            print(f"built project {project_id}: {args.tasks} tasks x {args.per_task} annotations in "
                  f"{build_s:.1f} s ({-(-args.tasks // IMPORT_CHUNK)} import calls)")

            # ---- pull
            counter = Counter()
            connector = LabelStudioConnector(server.url, server.api_key, project_id, httpx_client=counter.client())
            pull, pull_s = timed(connector.pull)
            assert len(pull.items) == args.tasks and len(pull.annotations) == n_ann
            pull_requests = counter.n

            counter.n = 0
            listed, list_s = timed(lambda: connector.pull(since="1970-01-01T00:00:00Z"))
            assert len(listed.items) == args.tasks and len(listed.annotations) == n_ann
            list_requests = counter.n

            sdk_counter = Counter()
            sdk = LabelStudio(base_url=server.url, api_key=server.api_key, httpx_client=sdk_counter.client(True))
            sdk_tasks, sdk_s = timed(lambda: list(sdk.tasks.list(project=project_id, fields="all", page_size=1000)))
            assert len(sdk_tasks) == args.tasks and sum(len(t.annotations) for t in sdk_tasks) == n_ann

            print(f"\npull of {args.tasks} tasks x {args.per_task} annotations ({n_ann} annotation records)")
            print(f"  SDK tasks.list(fields='all') iterator (baseline): {sdk_s:6.2f} s  {sdk_counter.n:4d} requests")
            print(f"  connector.pull() full (export endpoint)         : {pull_s:6.2f} s  {pull_requests:4d} requests"
                  f"  -> {sdk_s / pull_s:.2f}x faster than the baseline")
            print(f"  connector.pull(since=epoch) (tasks list, JSON)  : {list_s:6.2f} s  {list_requests:4d} requests"
                  f"  -> {sdk_s / list_s:.2f}x faster than the baseline")

            # ---- push to a review project
            rng = np.random.default_rng(args.seed + 1)
            chosen = rng.choice(len(task_ids), size=min(args.push, len(task_ids)), replace=False)
            requests = [ReviewRequest(item_id=str(task_ids[i]), round=1, data={TEXT_FIELD: texts[i]},
                                      quality=float(rng.random()), reason="annotators split 2-1",
                                      suggested_label=CLASSES[int(rng.integers(len(CLASSES)))]) for i in chosen]
            counter.n = 0
            pushed, push_s = timed(lambda: connector.push(requests))
            push_requests = counter.n
            counter.n = 0
            again, again_s = timed(lambda: connector.push(requests))
            assert again == pushed
            review_project = pushed[0].target_project

            naive_counter = Counter()
            naive = LabelStudio(base_url=server.url, api_key=server.api_key, httpx_client=naive_counter.client(True))
            sample = requests[: args.naive_sample]
            naive_project = naive.projects.create(title="bench naive review", label_config=choices_config())

            def one_by_one():
                for r in sample:
                    task = naive.tasks.create(project=naive_project.id, data={
                        **r.data, "relabel_item": r.item_id, "relabel_round": r.round,
                        "relabel_quality": r.quality, "relabel_reason": r.reason})
                    naive.predictions.create(task=task.id, score=r.quality, model_version="relabel-round-1;",
                                             result=[{"from_name": "topic", "to_name": "body", "type": "choices",
                                                      "value": {"choices": [r.suggested_label]}}])
            _, naive_s = timed(one_by_one)
            per_task_naive = naive_s / len(sample)
            print(f"\npush of {len(requests)} review tasks (project mode) into project {review_project}")
            print(f"  connector.push                          : {push_s:6.2f} s  {push_requests:4d} requests")
            print(f"  same push again (finds all, creates 0)  : {again_s:6.2f} s  {counter.n:4d} requests")
            print(f"  SDK one task + one prediction at a time : {per_task_naive * 1000:6.1f} ms per task on "
                  f"{len(sample)} tasks, {naive_counter.n} requests -> {len(requests)} tasks would take "
                  f"~{per_task_naive * len(requests):.0f} s, {per_task_naive * len(requests) / push_s:.0f}x the "
                  f"connector's time")

            # ---- push in place
            in_place = [ReviewRequest(item_id=r.item_id, round=2, data=r.data, quality=r.quality, reason=r.reason,
                                      suggested_label=r.suggested_label) for r in requests[: args.in_place]]
            counter.n = 0
            _, in_place_s = timed(lambda: connector.push(in_place, mode="in_place"))
            in_place_requests = counter.n
            counter.n = 0
            _, in_place_again_s = timed(lambda: connector.push(in_place, mode="in_place"))
            print(f"\npush in place of {len(in_place)} tasks (predictions import + overlap PATCH per task + view)")
            print(f"  connector.push(mode='in_place')         : {in_place_s:6.2f} s  {in_place_requests:4d} requests")
            print(f"  same push again (creates nothing)       : {in_place_again_s:6.2f} s  {counter.n:4d} requests")


if __name__ == "__main__":
    main()
