"""The round report: its numbers against the store, escaping, size, the CLI, and the page in headless Chromium.

The browser tests drive Debian's `chromium` over the DevTools protocol (websocket-client): console errors,
network requests and JavaScript dialogs are events there, not guesses from a screenshot. A screenshot of the
page is kept in test-artifacts/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from connectors.records import AnnotationRecord, Pull
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.errors import ConfigError, StoreError
from relabel.scoring.agreement import krippendorff_alpha, pairwise_agreement
from relabel.report.page import DEFAULT_TOP, render_report, write_report
from relabel.loop.store import Store
from test_rounds import FakeLabelStudio, make_loop

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
HOSTILE_TEXT = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_ANNOTATOR = '"><b>x</b>'
ANNOTATORS = ("ann@x", "bob@x", "cy@x", "dee@x", HOSTILE_ANNOTATOR)
URL = "http://ls.example:8080"
PLOTS = 5   # trend, left to fix, annotators, annotator confusion, noise matrix (the agreement matrix is a table)


@pytest.fixture(scope="module")
def three_rounds(tmp_path_factory):
    """A store after three rounds whose review tasks were answered (truth, so some are corrections), with one
    item's text and one annotator's name made of HTML."""
    tmp = tmp_path_factory.mktemp("report")
    fake = FakeLabelStudio(n_items=150, annotators=ANNOTATORS, noise=0.3, seed=3)
    # Label Studio's lead_time on every annotation (cy@x's: none recorded), and three skips by bob@x.
    fake.annotations = [dataclasses.replace(a, lead_time=None if a.annotator_id == "cy@x" else 4.0 + n % 5)
                        for n, a in enumerate(fake.annotations)]
    fake.annotations += [AnnotationRecord(annotation_id=f"skip{n}", item_id=str(1000 + n), annotator_id="bob@x",
                                          label=None, created_at="2026-01-01", updated_at="2026-01-01T00:00:00",
                                          skipped=True, lead_time=2.0) for n in range(3)]
    # The stop signal off: these tests are about the report of three pushed rounds (after round 2's clean answers
    # the signal would stop round 3: reviewers corrected none of what they decided, issue 20).
    loop = make_loop(tmp, fake, budget=12, min_expected_errors=0.0)
    loop.store.set_meta("label_studio_url", URL)
    for rnd in (1, 2, 3):
        loop.round(budget=12)
        if rnd < 3:
            for n, task in enumerate(loop.store.review_tasks(rnd)):
                if n % 4 != 3:      # leave some tasks unanswered
                    fake.answer(task["task_id"], "lead@x", fake.truth[task["item_id"]])
    # The worst-listed item gets hostile text through the real pull path.
    worst = loop.store.lowest_quality(3, 1)[0]["item_id"]
    item = next(it for it in fake.items if it.item_id == worst)
    loop.store.apply_pull(Pull(items=[dataclasses.replace(item, text=HOSTILE_TEXT, data={"text": HOSTILE_TEXT})],
                               annotations=[], cursor=None))
    yield loop, fake, tmp, worst
    loop.close()


# ---- the numbers ----------------------------------------------------------------------------------------------
def test_summary_and_trend_match_the_store(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store)
    status = loop.status()["rounds"]
    # the trend table is per round, exactly as `relabel status` prints it
    for row in status:
        cells = _row_cells(page, row["round"])
        assert cells[1:4] == [f"{row['items']:,}", f"{row['annotations']:,}", "5"]
        assert cells[5:8] == [str(row["pushed"]), str(row["reviewed"]), str(row["corrected"])]
        assert cells[8] == f"{row['expected_remaining_errors']:.1f}"
    assert sum(r["corrected"] for r in status) > 0 and "since round 2" in page
    # the round's override regime, as `relabel status` has it (issue 20)
    import html as html_module
    from relabel.scoring.override_evidence import regime_sentence
    assert status[-1]["overrides"]["regime"] in ("earned", "not earned", "too little evidence")
    assert html_module.escape(regime_sentence(status[-1]["overrides"]), quote=False) in page.replace("&#x27;", "'")
    # the stop signal's estimate for round 3's batch, with the evidence it used (round 2's reviewers)
    last = status[-1]
    assert last["batch_evidence"].startswith("reviewers corrected ") and "in round 2" in last["batch_evidence"]
    assert (f"Among the items this round sent (or would have sent) ≈ {last['batch_expected']:.1f} (90% interval "
            f"{last['batch_low']}–{last['batch_high']}): {last['batch_evidence']}.") in page
    # the cards are cumulative and say so: distinct items reviewed in rounds 1-3
    reviewed_items = {d["item_id"] for d in loop.store.decisions() if d["outcome"] != "skipped"}
    assert re.search(rf'<div class="v">{len(reviewed_items)}</div><div class="k">items reviewed so far', page)


def test_review_threshold_is_the_highest_quality_sent_to_review(three_rounds):
    loop, _, _, _ = three_rounds
    for rnd in (1, 3):
        threshold = max(s["quality"] for s in loop.store.selection(rnd))
        page = render_report(loop.store, round=rnd)
        assert f"items sent to review this round ({threshold:.2f})" in page
        assert f", round {rnd}</h1>" in page


def test_annotator_table_has_quality_agreement_worst_class_and_change(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store)
    body = page.split('id="annotator-table"')[1].split("</table>")[0]
    now = {r["annotator_id"]: r for r in loop.store.annotator_scores(3)}
    before = {r["annotator_id"]: r for r in loop.store.annotator_scores(2)}
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", body)
    assert len(rows) == len(ANNOTATORS)
    for name, rest in rows:
        key = name.replace("&quot;", '"').replace("&gt;", ">").replace("&lt;", "<")
        r = now[key]
        values = re.findall(r'data-v="([^"]*)"', rest)
        assert float(values[1]) == pytest.approx(r["quality"], abs=1e-6)
        assert float(values[3]) == pytest.approx(r["quality"] - before[key]["quality"], abs=1e-6)
        assert f"<td>{r['worst_class']}</td>" in rest and f"{100 * r['agreement']:.0f}%" in rest


def test_classes_name_the_most_confused_pairs(three_rounds):
    loop, _, _, _ = three_rounds
    stats = loop.store.class_stats(3)
    classes = loop.store.classes
    joint = stats["confident_joint"]
    assert len(stats["noise_matrix"]) == len(classes)
    # annotator confusion counts every counted annotation once
    assert sum(map(sum, stats["annotator_confusion"])) == len(loop.store.annotations_table())
    g, t = max(((g, t) for g in range(3) for t in range(3) if g != t), key=lambda p: joint[p[0]][p[1]])
    page = render_report(loop.store)
    if joint[g][t] >= 1:
        assert f"'{classes[t]}' labelled as '{classes[g]}': {joint[g][t]:,} items" in page
    else:
        assert "No confusions found." in page


def test_worst_items_are_listed_with_labels_suggestion_reason_and_link(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store, top=7)
    expected = loop.store.lowest_quality(3, 7)
    links = re.findall(r'href="([^"]+)"', page.split('<section id="items">')[1])
    assert links == [f"{URL}/projects/7/data?task={r['item_id']}" for r in expected]
    listed = page.split('<table class="items">')[1]
    assert listed.count("<tr>") == 1 + 7
    first = expected[1]
    labels = loop.store.labels_of([first["item_id"]])[first["item_id"]]
    row = listed.split(f"task={first['item_id']}")[1].split("</tr>")[0]
    for annotator, label in labels:
        assert label in row and annotator.replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;") in row
    assert "model says" in row and f"{first['quality']:.3f}" in row


def test_agreement_matrix_and_alpha_match_the_store(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store)
    table = loop.store.annotations_table()
    alpha = krippendorff_alpha(table)     # itself checked by hand in tests/test_agreement.py
    assert 0 < alpha < 1
    assert f'<div class="v" id="alpha">{alpha:.3f}</div>' in page
    assert f"Krippendorff&#x27;s α (nominal) over the {int((table.num_annotations() >= 2).sum()):,} items" in page
    # the matrix: every pair's agreement and items shared, as relabel.scoring.agreement counts them (checked by hand there)
    most_active_first = np.argsort(-np.bincount(table.annotator), kind="stable")
    pairs = pairwise_agreement(table, most_active_first)
    matrix = page.split('id="agreement-matrix"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><th>(\d+)\. (.*?)</th>(.*?)</tr>", matrix)
    assert [html.unescape(name) for _, name, _ in rows] == [str(a) for a in pairs.annotator_ids]
    for i, (_, _, cells) in enumerate(rows):
        values = re.findall(r"<td[^>]*>(.*?)</td>", cells)
        for j, cell in enumerate(values):
            if i == j:
                assert cell == str(pairs.shared[i, i])
            elif pairs.shared[i, j]:
                assert cell == f'{pairs.agreed[i, j] / pairs.shared[i, j]:.2f} <span class="who">({pairs.shared[i, j]})</span>'
            else:
                assert cell == ""


def test_queue_state_per_round_matches_the_store(three_rounds):
    loop, fake, _, _ = three_rounds
    page = render_report(loop.store)
    body = page.split('id="queue-table"')[1].split("</table>")[0]
    for rnd in (1, 2, 3):
        tasks = loop.store.review_tasks(rnd)
        answered = sum(t["task_id"] in fake.answers for t in tasks) if rnd < 3 else 0
        cells = re.findall(r"<td[^>]*>(.*?)</td>", re.search(rf"<tr><td>{rnd}</td>(.*?)</tr>", body).group(1))
        # pushed (human time), tasks, answered, skipped, open, oldest open
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \((just now|\d+ s ago)\)", cells[0]), cells[0]
        assert cells[1:5] == [str(len(tasks)), str(answered), "0", str(len(tasks) - answered)]
        assert cells[5].endswith(" s")                 # the oldest open task was pushed seconds ago
    assert "3 tasks are still open" not in page        # 9 in round 1-2 left open plus round 3's 12
    assert f"{sum(len(loop.store.review_tasks(r)) for r in (1, 2, 3)) - len(fake.answers):,} tasks are still open" in page


def test_reviewer_changes_list_item_old_new_and_who(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store)
    changed = [d for d in loop.store.decisions() if d["outcome"] == "corrected"]
    assert changed
    body = page.split('id="changes-table"')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + len(changed)
    for d in changed:
        row = body.split(f"task={d['item_id']}\"")[1].split("</tr>")[0]
        assert (f'<span class="label">{d["previous_label"]}</span> → <span class="label sugg">{d["label"]}</span>'
                in row and "lead@x" in row and "2026-02-01 00:00 UTC" in row)
    assert f"{len(changed)} labels changed by reviewers in rounds 1–3 (cumulative)" in page


def test_per_annotator_confusion_and_class_accuracy_with_counts(three_rounds):
    loop, _, _, _ = three_rounds
    store = loop.store
    page = render_report(store)
    final = {r["item_id"]: r["final_label"] for r in store.scores(3)}
    body = page.split('id="accuracy-table"')[1].split("<tfoot>")[0]
    classes = store.classes
    for annotator in ("ann@x", "dee@x"):
        given = [(final[item], label) for item, labels in store.labels_of(final).items()
                 for who, label in labels if who == annotator and final[item] is not None]
        row = body.split(f"<tr><td>{annotator}</td>")[1].split("</details>")[0]
        cells = re.findall(r'<td class="n" data-v="([^"]*)">(.*?)</td>', row.split("<details>")[0])
        right = sum(f == g for f, g in given)
        assert cells[0][0] == str(len(given)) and float(cells[1][0]) == pytest.approx(right / len(given), abs=1e-6)
        for c, cls in enumerate(classes):
            of_class = [g for f, g in given if f == cls]
            ok = sum(g == cls for g in of_class)
            assert cells[2 + c][1] == f'{ok / len(of_class):.2f} <span class="who">({len(of_class)})</span>'
        # the confusion: every final class x given class count of this annotator
        confusion = row.split('<table class="confusion">')[1]
        for f in classes:
            counts = [sum(1 for ff, g in given if ff == f and g == gg) for gg in classes]
            cells_f = re.findall(r"<td[^>]*>(\d*)</td>", confusion.split(f"<tr><th>{f}</th>")[1].split("</tr>")[0])
            assert [int(x or 0) for x in cells_f] == counts


def test_time_per_label_and_skips_come_from_label_studio(three_rounds):
    loop, _, _, _ = three_rounds
    page = render_report(loop.store)
    body = page.split('id="annotator-table"')[1].split("</table>")[0]

    def tail(name):
        row = body.split(f"<tr><td>{name}</td>")[1].split("</tr>")[0]
        return re.findall(r"<td[^>]*>(.*?)</td>", row)[-3:]
    times = [t for a, t in loop.store.annotation_activity()[1] if a == "ann@x"]
    assert tail("ann@x") == ["0", f"{float(np.median(times)):.1f} s", f"{sum(times) / 60:.0f} min"]
    assert tail("bob@x")[0] == "3"               # three skipped annotations
    assert tail("cy@x")[1:] == ["–", "–"]        # Label Studio recorded no lead_time


def test_consensus_overriding_every_annotator_is_listed(three_rounds, tmp_path):
    loop, _, _, _ = three_rounds
    copy = tmp_path / "override.db"
    loop.store.db.conn.execute("vacuum into ?", [str(copy)])
    with Store(copy) as store:
        scores = [r for r in store.scores(3) if r["labelled"] and not r["reviewed"]]
        target = scores[0]
        given = {label for _, label in store.labels_of([target["item_id"]])[target["item_id"]]}
        other = next(c for c in store.classes if c not in given)
        # as a round records an override: the consensus label and its flag
        store.db.execute("update scores set consensus_label = ?, override = 1 where round = 3 and item_id = ?",
                         [other, target["item_id"]])
        store.db.conn.commit()
        page = render_report(store)
        labels = store.labels_of(r["item_id"] for r in scores)
        overridden = [r["item_id"] for r in store.scores(3) if r["labelled"] and not r["reviewed"]
                      and r["consensus_label"] not in {lab for _, lab in labels.get(r["item_id"], [])}]
    assert target["item_id"] in overridden
    body = page.split('id="overrides-table"')[1].split("</table>")[0]
    assert f"task={target['item_id']}" in body and f'<span class="label sugg">{other}</span>' in body
    assert body.count("<tr>") == 1 + len(overridden) and f"{len(overridden)} items this round." in page


def test_done_banner_when_the_stop_signal_fired(three_rounds, tmp_path):
    loop, _, _, _ = three_rounds
    assert 'id="done"' not in render_report(loop.store)
    copy = tmp_path / "stopped.db"
    loop.store.db.conn.execute("vacuum into ?", [str(copy)])
    with Store(copy) as store:
        store.mark_stopped(3, "expected wrong labels among the next batch 0.3 < min_expected_errors 1")
        page = render_report(store)
        assert 'id="done"' not in render_report(store, round=2)
    assert re.search(r'<div class="banner done" id="done"><strong>You are done.</strong> expected wrong labels '
                     r"among the next batch 0.3 &lt; min_expected_errors 1", page)


def test_task_text_and_annotator_names_are_escaped(three_rounds):
    loop, _, _, worst = three_rounds
    page = render_report(loop.store)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&quot;&gt;&lt;b&gt;x&lt;/b&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    assert page.count("<script>") == 1          # ours, allowed by its hash in the CSP


def test_report_size_does_not_grow_with_items(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_report import LIMIT_BYTES, build_synthetic_store
    sizes = []
    for n in (1_000, 8_000):
        store = build_synthetic_store(tmp_path / f"{n}.db", n, n_rounds=3, budget=50)
        summary = write_report(store, tmp_path / f"{n}.html")
        store.close()
        assert summary.items_listed == DEFAULT_TOP and summary.round == 3
        sizes.append(summary.bytes)
    assert sizes[1] < LIMIT_BYTES
    assert sizes[1] < 1.2 * sizes[0]             # 8x the items, about the same page


def test_bad_round_top_and_empty_store_are_clear_errors(three_rounds, tmp_path):
    loop, _, _, _ = three_rounds
    with pytest.raises(StoreError, match=r"Round 9 is not in the store \(it has rounds 1-3\); pass --round"):
        render_report(loop.store, round=9)
    with pytest.raises(ConfigError, match="must be a positive integer. Got 0"):
        render_report(loop.store, top=0)
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(loop.store, tmp_path / "missing" / "r.html")
    with Store(tmp_path / "empty.db") as empty:
        with pytest.raises(StoreError, match="no scored round yet; run `relabel round`"):
            render_report(empty)


def test_old_round_without_class_matrices_says_so(three_rounds, tmp_path):
    loop, _, _, _ = three_rounds
    copy = tmp_path / "old.db"
    loop.store.db.conn.execute("vacuum into ?", [str(copy)])
    with Store(copy) as old:
        old.db.execute("update rounds set class_stats = null where round = 1")
        old.db.conn.commit()
        page = render_report(old, round=1)
    assert "scored before relabel recorded class matrices" in page and page.count('class="plot"') == PLOTS - 2


def test_cli_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, "test-key-not-secret")
    runner, fake = CliRunner(), FakeLabelStudio()

    def run(*args):
        return runner.invoke(cli, list(args), obj={"connector": fake}, catch_exceptions=False)
    assert run("init", "--url", URL, "--project", "7", "--featurizer", "tfidf").exit_code == 0
    assert run("round", "--budget", "5").exit_code == 0
    result = run("--quiet", "report", "--out", "r.html", "--top", "3")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"Wrote the round 1 report to r.html \(0\.\d MB, 3 items listed\).\n", result.output)
    assert f"{URL}/projects/7/data?task=" in (tmp_path / "r.html").read_text()
    bad = run("report", "--out", "r.html", "--round", "4")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "Round 4 is not in the store" in bad.output


# ---- the page in a real browser -------------------------------------------------------------------------------
class DevTools:
    """Headless Chromium driven over the DevTools protocol; every event it sends is kept in ``events``."""

    def __init__(self, profile: Path):
        import websocket
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            pytest.fail("chromium is not installed; run `make install` as root (it apt-installs chromium).")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
             "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.events: list[dict] = []
        self._id = 0

    def send(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        self.events.append(message)
        if message.get("method") == "Page.javascriptDialogOpening":   # never leave the page blocked
            self._id += 1
            self.ws.send(json.dumps({"id": self._id, "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}}))

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            message = json.loads(self.ws.recv())
            if "method" in message:
                self._event(message)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def named(self, method: str) -> list[dict]:
        return [e["params"] for e in self.events if e.get("method") == method]

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def browser_page(three_rounds, tmp_path_factory):
    """The three-round report opened in headless Chromium, with a full-page screenshot taken."""
    loop, _, tmp, _ = three_rounds
    report = write_report(loop.store, tmp / "report.html").path.resolve()
    chrome = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            chrome.send(f"{domain}.enable")
        chrome.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        chrome.send("Page.navigate", url=report.as_uri())
        chrome.wait_for("Page.loadEventFired")
        chrome.evaluate("Promise.all(Array.from(document.images).map(i => i.decode()))")
        first = chrome.send("Page.captureScreenshot", format="png",
                            clip={"x": 0, "y": 0, "width": 1280, "height": 900, "scale": 1})
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "report-first-screen.png").write_bytes(base64.b64decode(first["data"]))
        height = chrome.evaluate("document.documentElement.scrollHeight")
        shot = chrome.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                           clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))
        yield chrome, report
    finally:
        chrome.close()


@pytest.mark.slow
def test_report_in_headless_chromium(browser_page):
    chrome, report = browser_page
    errors = ([c for c in chrome.named("Runtime.consoleAPICalled") if c["type"] in ("error", "assert")]
              + chrome.named("Runtime.exceptionThrown")
              + [e for e in chrome.named("Log.entryAdded") if e["entry"]["level"] == "error"])
    assert errors == []
    requested = [r["request"]["url"] for r in chrome.named("Network.requestWillBeSent")]
    assert report.as_uri() in requested
    assert [u for u in requested if u != report.as_uri() and not u.startswith("data:")] == []
    plots = chrome.evaluate("Array.from(document.querySelectorAll('img.plot'))"
                            ".map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(plots) == PLOTS
    assert all(done and w > 200 and h > 150 for _, done, w, h in plots), plots
    for shot in (ARTIFACTS / "report.png", ARTIFACTS / "report-first-screen.png"):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    # The 3-line clamp keeps the worst-items table short, and a click shows the whole text.
    clamped = chrome.evaluate("(() => { const el = document.querySelector('.excerpt'); const h = el.clientHeight;"
                              " const lh = parseFloat(getComputedStyle(el).lineHeight); return [h, lh]; })()")
    assert clamped[0] <= 3 * clamped[1] + 1, clamped


@pytest.mark.slow
def test_annotator_table_sorts_in_the_browser(browser_page):
    chrome, _ = browser_page
    column = ("Array.from(document.querySelectorAll('#annotator-table tbody tr'))"
              ".map(r => parseFloat(r.cells[1].getAttribute('data-v')))")
    chrome.evaluate("document.querySelectorAll('#annotator-table th')[1].click()")
    ascending = chrome.evaluate(column)
    chrome.evaluate("document.querySelectorAll('#annotator-table th')[1].click()")
    descending = chrome.evaluate(column)
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
    assert len(set(ascending)) > 1


@pytest.mark.slow
def test_hostile_text_renders_as_text_and_no_dialog_fires(browser_page, three_rounds):
    chrome, _ = browser_page
    _, _, _, worst = three_rounds
    # The item's link also stands in other tables (overrides, reviewer changes): read the worst-items row's excerpt.
    cell = chrome.evaluate(f"Array.from(document.querySelectorAll('a[href$=\"task={worst}\"]'))"
                           ".map(a => a.closest('tr').querySelector('.excerpt')).find(e => e).textContent")
    assert cell == HOSTILE_TEXT
    names = chrome.evaluate("Array.from(document.querySelectorAll('#annotator-table tbody tr'))"
                            ".map(r => r.cells[0].textContent)")
    assert HOSTILE_ANNOTATOR in names
    assert chrome.evaluate("document.querySelectorAll('main img:not(.plot), main b, main script').length") == 0
    assert chrome.evaluate("document.scripts.length") == 1
    assert chrome.named("Page.javascriptDialogOpening") == []


def _row_cells(page: str, rnd: int) -> list[str]:
    table = page.split('id="summary"')[1].split("</table>")[0]
    row = re.search(rf"<tr><td>{rnd}</td>(.*?)</tr>", table).group(1)
    return [str(rnd)] + re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_times_read_as_people_say_them():
    from datetime import datetime, timezone

    from relabel.report.html import age, when
    now = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)
    assert when("2026-03-01T12:00:00+00:00", now) == "2026-03-01 12:00 UTC (3 days ago)"
    assert when("2026-03-04T11:00:00.123Z", now) == "2026-03-04 11:00 UTC (60 min ago)"
    assert when("2026-03-04T11:59:30", now) == "2026-03-04 11:59 UTC (just now)"
    assert when(None) == "–" and when("not a time") == "not a time"
    assert [age(s) for s in (5, 600, 7200, 400000, None)] == ["5 s", "10 min", "2 h", "5 days", "–"]
