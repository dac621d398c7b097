"""How long after the last review answer the next batch is in Label Studio, with `relabel serve` and a real server.

    python benchmarks/bench_serve_latency_ls.py --n 1000 --rounds 3       # quick
    nice -n 10 python benchmarks/bench_serve_latency_ls.py --n 10000 --rounds 10

What it runs, as a user would:
1. a private Label Studio (relabel.server.start_label_studio: 127.0.0.1, a temporary data dir, SSRF protection
   off so that it may call the service's webhook on 127.0.0.1);
2. a source project of ``--n`` IMDB reviews (../shared/data/label_errors/texts), each with 3 annotations by 3 of
   5 simulated annotators (each label wrong with probability 0.15), imported in bulk (1,000 tasks a call);
3. `relabel init` (tfidf, batches of ``--budget``), then `relabel serve --register` as a subprocess with that
   config file. It learns of answers by the webhooks --register creates (ANNOTATION_CREATED on the review
   project wakes the worker, which collects), with its default reconcile as the fallback; the default trigger
   "drained" starts a round when every task of the latest batch is answered. The stop signal is turned off
   (``[review] min_expected_errors = 0``): a truthful reviewer would otherwise rightly end the loop before 10
   rounds, and then there is no next batch to wait for;
4. each round: a reviewer (a Label Studio user) finds the unanswered tasks of the review project through the API
   and answers every one with the review's true label, one annotation POST each, as the UI would (``--think`` s
   apart; 0, the default, is faster than any person: the webhooks of the whole batch then come as one burst, the
   worker never sees a half-answered queue, and the next round's model cannot be fitted ahead); the clock starts
   when the last POST returned. The script polls the review project (``GET /api/projects/{id}/``, every
   ``--poll`` s) and the latency is the first poll at which all the next batch's tasks are visible (the batch's
   size is read afterwards from relabel's store: the tasks of the round that pushed).

Printed per round: latency, the worker's load (1-min load average) and the CPU seconds relabel serve and Label
Studio (its process group) used in that window. p95 over the rounds is numpy's linear interpolation
(``np.percentile(x, 95)``): over 10 rounds it lies between the largest and the second largest, 0.55 of the way up.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from benchmarks.shared_data import label_errors_dir  # noqa: E402

CLASSES = ("negative", "positive")      # IMDB's label 0 and 1
ANNOTATORS, PER_ITEM, WRONG = 5, 3, 0.15
IMPORT_CHUNK = 1000
PASSWORD, SECRET = "bench-serve-password", "bench-serve-webhook-secret"


def imdb_tasks(n: int, seed: int, annotator_ids: list[int]) -> tuple[list[dict], list[str]]:
    """``n`` importable tasks (IMDB text + 3 annotations by distinct annotators) and each task's true label."""
    from label_studio_helpers import TEXT_FIELD, annotation
    with gzip.open(label_errors_dir() / "texts" / "imdb_test_texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rng = np.random.default_rng(seed)
    tasks, truth = [], []
    for i in rng.choice(len(rows), size=n, replace=False):
        label = int(rows[i]["label"])
        who = rng.choice(len(annotator_ids), size=PER_ITEM, replace=False)
        given = [label if rng.random() >= WRONG else 1 - label for _ in who]
        tasks.append({"data": {TEXT_FIELD: rows[i]["text"]},
                      "annotations": [annotation(annotator_ids[a], CLASSES[g]) for a, g in zip(sorted(who), given)]})
        truth.append(CLASSES[label])
    return tasks, truth


def p95(values) -> float:
    """numpy's linear interpolation: of 10 values, the 9th largest plus 0.55 of the gap to the largest."""
    return float(np.percentile(np.asarray(values, dtype=float), 95))


def first_time_at_least(timeline: list[tuple[float, int]], count: int) -> float | None:
    """The first poll time at which the polled task count reached ``count`` (None if it never did)."""
    return next((t for t, c in timeline if c >= count), None)


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process (and, with ``children``, of its live descendants)."""
    import psutil
    try:
        procs = [psutil.Process(pid)]
        if children:
            procs += procs[0].children(recursive=True)
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return float("nan")


class Bench:
    def __init__(self, args, root: Path):
        self.args, self.root = args, root
        self.ls = None
        self.service: subprocess.Popen | None = None

    # ---- set-up --------------------------------------------------------------------------------------------
    def start_label_studio(self) -> None:
        from label_studio_helpers import admin_client
        from relabel.server import start_label_studio
        t = time.perf_counter()
        self.ls = start_label_studio(self.root / "label_studio", username="admin@example.com",
                                     password="bench-admin-pass", ssrf_protection=False,
                                     timeout=float(os.environ.get("RELABEL_LS_START_TIMEOUT", 600)))
        self.admin = admin_client(self.ls.url, self.ls.api_key)
        self.raw = self.admin._client_wrapper.httpx_client
        print(f"Label Studio up at {self.ls.url} in {time.perf_counter() - t:.0f} s", flush=True)

    def build_project(self) -> None:
        from label_studio_helpers import choices_config, import_tasks, make_members
        members = make_members(self.admin, "bench-annotator-", ANNOTATORS)
        self.reviewer = make_members(self.admin, "bench-reviewer-", 1)[0][0]
        tasks, truth = imdb_tasks(self.args.n, self.args.seed, [uid for uid, _ in members])
        self.project = self.admin.projects.create(title="relabel serve latency", label_config=choices_config(CLASSES)).id
        t = time.perf_counter()
        self.truth: dict[int, str] = {}
        for start in range(0, len(tasks), IMPORT_CHUNK):
            ids = import_tasks(self.admin, self.project, tasks[start:start + IMPORT_CHUNK])
            self.truth.update(zip(ids, truth[start:start + IMPORT_CHUNK]))
        print(f"source project {self.project}: {len(self.truth)} IMDB reviews x {PER_ITEM} annotations imported in "
              f"{time.perf_counter() - t:.0f} s", flush=True)

    def env(self) -> dict:
        from relabel.config import API_KEY_ENV, SERVE_PASSWORD_ENV, WEBHOOK_SECRET_ENV
        env = dict(os.environ)
        env.update({API_KEY_ENV: self.ls.api_key, SERVE_PASSWORD_ENV: PASSWORD, WEBHOOK_SECRET_ENV: SECRET,
                    "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
        return env

    def relabel(self, *args: str, **kwargs):
        return [sys.executable, "-c", "from relabel.cli import main; main()", "--config",
                str(self.root / "relabel.toml"), *args]

    def configure(self) -> None:
        from relabel.server import free_port
        subprocess.run(self.relabel("init", "--url", self.ls.url, "--project", str(self.project), "--featurizer",
                                    "tfidf", "--budget", str(self.args.budget), "--store", str(self.root / "relabel.db")),
                       cwd=self.root, env=self.env(), check=True, stdout=subprocess.DEVNULL)
        config = self.root / "relabel.toml"
        text = config.read_text().replace("[review]\n", "[review]\nmin_expected_errors = 0\n")
        self.port = free_port()
        config.write_text(text + f"\n[serve]\nport = {self.port}\ntrigger = \"drained\"\n")

    def start_service(self) -> None:
        self.log = open(self.root / "serve.log", "ab")
        self.service = subprocess.Popen(self.relabel("serve", "--register"), cwd=self.root, env=self.env(),
                                        stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log_text(self) -> str:
        return (self.root / "serve.log").read_text(errors="replace")

    # ---- Label Studio through the API ------------------------------------------------------------------------
    def review_project(self) -> int | None:
        from connectors.label_studio import REVIEW_MARKER
        marker = f"{REVIEW_MARKER}{self.project}"
        found = [p.id for p in self.admin.projects.list() if marker in (p.description or "").split()]
        return found[0] if found else None

    def task_count(self, project: int) -> int:
        return int(self.raw.request(f"api/projects/{project}/", method="GET").json()["task_number"])

    def unanswered(self, project: int) -> list[tuple[int, int]]:
        """(review task id, source task id) of every review task nobody answered yet."""
        out = []
        for task in self.admin.tasks.list(project=project, fields="all", page_size=1000):
            if not task.total_annotations and not task.cancelled_annotations:
                out.append((int(task.id), int(task.data["relabel_item"])))
        return out

    # ---- relabel's store (read only: which round pushed, and how many tasks) -----------------------------------
    def pushed_round(self, number: int) -> int | None:
        from relabel.loop.store import Store
        path = self.root / "relabel.db"
        if not path.exists():
            return None
        with Store(path) as store:
            row = next((r for r in store.rounds() if r["round"] == number), None)
            if row is None or row["status"] not in ("pushed", "stopped"):
                return None
            return len(store.review_tasks(number))

    def wait(self, what: str, check, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            if self.service is not None and self.service.poll() is not None:
                raise SystemExit(f"relabel serve exited with {self.service.returncode}:\n{self.log_text()[-3000:]}")
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log_text()[-3000:]}")
            time.sleep(self.args.poll)

    # ---- the rounds ---------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        t = time.perf_counter()
        self.start_service()
        pushed = self.wait("round 1", lambda: self.pushed_round(1), self.args.round_timeout)
        review = self.review_project()
        print(f"round 1 (started by relabel serve itself) pushed {pushed} tasks to review project {review} "
              f"{time.perf_counter() - t:.0f} s after `relabel serve --register` started", flush=True)
        rows = []
        for number in range(2, self.args.rounds + 2):
            batch = self.wait("the batch's tasks", lambda: self.unanswered(review), 60)
            before = self.task_count(review)
            from label_studio_helpers import answer_task
            for k, (task_id, item) in enumerate(batch):
                if k:
                    time.sleep(self.args.think)
                answer_task(self.admin, task_id, self.truth[item], self.reviewer)
            last = time.monotonic()
            cpu_serve0, cpu_ls0 = cpu_seconds(self.service.pid, True), cpu_seconds(self.ls.process.pid, True)
            load0 = os.getloadavg()[0]
            timeline: list[tuple[float, int]] = []

            def next_batch():
                timeline.append((time.monotonic(), self.task_count(review)))
                return self.pushed_round(number) is not None and timeline[-1][1] > before
            self.wait(f"round {number}'s batch", next_batch, self.args.round_timeout)
            size = self.pushed_round(number)
            while first_time_at_least(timeline, before + size) is None:   # pushed in the store, not yet all visible
                timeline.append((time.monotonic(), self.task_count(review)))
                time.sleep(self.args.poll)
            seen = first_time_at_least(timeline, before + size)
            row = {"round": number, "answered": len(batch), "pushed": size, "latency": seen - last,
                   "cpu_serve": cpu_seconds(self.service.pid, True) - cpu_serve0,
                   "cpu_ls": cpu_seconds(self.ls.process.pid, True) - cpu_ls0,
                   "load": (load0 + os.getloadavg()[0]) / 2}
            rows.append(row)
            print(f"  round {number}: {row['answered']} answers; next batch of {size} visible {row['latency']:.1f} s "
                  f"after the last answer (relabel serve {row['cpu_serve']:.1f} CPU s, Label Studio "
                  f"{row['cpu_ls']:.1f} CPU s; load average {row['load']:.1f})", flush=True)
            if size == 0:
                break
        return rows

    def stop(self) -> None:
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.service.kill()
        if self.ls is not None:
            self.ls.stop()


def summary(rows: list[dict]) -> str:
    lat = [r["latency"] for r in rows]
    lines = ["| round | answers | next batch | latency s | relabel serve CPU s | Label Studio CPU s | load avg |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['round']} | {r['answered']} | {r['pushed']} | {r['latency']:.1f} | {r['cpu_serve']:.1f} | "
              f"{r['cpu_ls']:.1f} | {r['load']:.1f} |" for r in rows]
    lines.append(f"\n{len(lat)} rounds: median {np.median(lat):.1f} s, p95 {p95(lat):.1f} s "
                 f"(np.percentile, linear), max {max(lat):.1f} s")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (round 1 is not timed)")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds the reviewer waits between answers (0: as fast as the API takes them)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls of the review project")
    parser.add_argument("--round-timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (serve.log, relabel.db)")
    args = parser.parse_args(argv)
    print(f"{args.n} IMDB reviews, {args.rounds} timed rounds, batches of {args.budget}, reviewer think time "
          f"{args.think:g} s, nice {os.nice(0)}, load "
          f"average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores", flush=True)
    root = Path(tempfile.mkdtemp(prefix="relabel-serve-ls-"))
    bench = Bench(args, root)
    try:
        bench.start_label_studio()
        bench.build_project()
        bench.configure()
        rows = bench.run()
    finally:
        bench.stop()
        if args.keep:
            print(f"kept {root}")
    print()
    print(summary(rows))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if not args.keep:
        import shutil
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
