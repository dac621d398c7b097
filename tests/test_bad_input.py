"""Every bad input gets one line that names the problem and the fix, the right exit code, no traceback, and leaves
the store as it was.

One table, one test. Each row starts from a copy of the same scored store (built once through the CLI against the
recorded fake of test_rounds), changes one thing (the config, the key, an option, a file, what the server
answers), runs one command, and checks:

- the exit code (1 for a runtime error, 2 for bad usage) and exactly one `Error:` line holding the expected text;
- no traceback (CliRunner keeps the exception: it must be click's SystemExit, nothing else);
- neither the API key nor a password from a URL appears in the output;
- the store is unchanged: the same SQL dump, and for the store rows the same bytes and no -wal/-shm file.

Server answers come from a tiny local HTTP server in this file that answers what each row tells it to (an HTML login
page with 200, a redirect, 401, broken JSON, a malformed task...). Labeling configs and annotations travel the same
way, through the real connector.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from connectors.records import Item
from label_studio_helpers import choices_config
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from test_rounds import FakeLabelStudio

KEY = "3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a"   # looks like a real legacy token: it must never be printed
PASSWORD = "hunter2-url-password"
# A personal access token's shape (a JWT); a 401 with it must not send the user to legacy tokens.
PERSONAL = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJlLW9mLWEtdGVzdC10b2tlbg"
PROJECT = 7                                        # FakeLabelStudio's project id


# ---- a tiny Label Studio impostor ------------------------------------------------------------------------------
Route = tuple[int, str, bytes, dict]  # status, content type, body, extra headers


def json_route(body, status: int = 200) -> Route:
    return status, "application/json", json.dumps(body).encode(), {}


HTML_LOGIN = b"<!DOCTYPE html><html><body><form action='/login'>Sign in to the proxy</form></body></html>"


def project_json(label_config: str | None = None, project: int = PROJECT) -> dict:
    return {"id": project, "title": "News", "label_config": label_config or choices_config(),
            "task_number": 1, "total_annotations_number": 1}


def served_project(label_config: str | None = None, tasks=None, project: int = PROJECT) -> dict[str, Route]:
    """A well-formed project whose labeling config or export can be replaced by a bad one."""
    task = {"id": 1, "data": {"text": "goal"}, "updated_at": "2026-01-01T00:00:00.000000Z",
            "annotations": [{"id": 11, "completed_by": 1, "result": [], "updated_at": "2026-01-01T00:00:00Z"}]}
    return {f"/api/projects/{project}": json_route(project_json(label_config, project)),
            # the snapshot export a full pull makes, then downloads (its DELETE afterwards answers 501 here)
            f"/api/projects/{project}/exports/": json_route({"id": 1, "status": "completed"}),
            f"/api/projects/{project}/exports/1/download": json_route([task] if tasks is None else tasks),
            "/api/users/": json_route([{"id": 1, "email": "a@x"}])}


class TinyServer:
    """An HTTP server on 127.0.0.1 answering each path from a table (anything else: ``default``)."""

    def __init__(self, routes: dict[str, Route], default: Route | None = None):
        table, fallback = routes, default or json_route({"detail": "Not found."}, 404)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                status, kind, body, headers = table.get(self.path.split("?")[0], fallback)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- the table -------------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    message: str
    setup: Callable[[Path, dict], None] | None = None   # (folder, environment) -> change one thing
    routes: dict[str, Route] | None = None               # serve these; the config's url and "{url}" point there
    default: Route | None = None                         # what the server answers for any other path
    fake: bool | Callable = False                        # talk to the recorded fake (or this one) instead of HTTP
    bytes_unchanged: bool = False                        # the store file itself must keep every byte
    secrets: tuple[str, ...] = field(default_factory=tuple)  # extra strings that must not be printed


def toml(folder: Path) -> Path:
    return folder / "relabel.toml"


def edit_config(old: str, new: str):
    def setup(folder: Path, env: dict) -> None:
        text = toml(folder).read_text()
        assert old in text, old
        toml(folder).write_text(text.replace(old, new, 1))
    return setup


def add_to_section(section: str, line: str):
    return edit_config(f"[{section}]\n", f"[{section}]\n{line}\n")


def set_url(url: str):
    def setup(folder: Path, env: dict) -> None:
        text = toml(folder).read_text()
        start = text.index("url = ")
        end = text.index("\n", start)
        toml(folder).write_text(text[:start] + f"url = {json.dumps(url)}" + text[end:])
    return setup


def key_file(content: bytes | None):
    def setup(folder: Path, env: dict) -> None:
        env[API_KEY_ENV] = ""
        if content is not None:
            (folder / "key").write_bytes(content)
        add_to_section("label_studio", 'api_key_file = "key"')(folder, env)
    return setup


def env_key(value: str):
    def setup(folder: Path, env: dict) -> None:
        env[API_KEY_ENV] = value
    return setup


def store_bytes(content: bytes):
    def setup(folder: Path, env: dict) -> None:
        (folder / "relabel.db").write_bytes(content)
    return setup


def newer_schema(folder: Path, env: dict) -> None:
    db = sqlite3.connect(folder / "relabel.db")
    with db:
        db.execute("update meta set value = '99' where key = 'schema_version'")
    db.execute("pragma journal_mode=delete")   # leave one self-contained file behind, no -wal
    db.close()


def foreign_sqlite(folder: Path, env: dict) -> None:
    (folder / "relabel.db").unlink()
    db = sqlite3.connect(folder / "relabel.db")
    with db:
        db.execute("create table photos (id integer primary key, path text)")
        db.execute("insert into photos (path) values ('cat.jpg')")
    db.close()


def truncated_store(folder: Path, env: dict) -> None:
    db = folder / "relabel.db"
    db.write_bytes(db.read_bytes()[:3000])


def store_is_a_folder(folder: Path, env: dict) -> None:
    edit_config('path = "relabel.db"', 'path = "a-folder"')(folder, env)
    (folder / "a-folder").mkdir()


def file_named(name: str):
    def setup(folder: Path, env: dict) -> None:
        (folder / name).write_text("not a folder\n")
    return setup


def folder_named(name: str):
    def setup(folder: Path, env: dict) -> None:
        (folder / name).mkdir()
    return setup


def no_server(folder: Path, env: dict) -> None:
    set_url(f"http://user:{PASSWORD}@127.0.0.1:{_closed_port()}")(folder, env)


_HELD = []


def port_in_use(folder: Path, env: dict) -> None:
    """[serve] port is a port another process listens on (held open until the module ends)."""
    import socket
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    _HELD.append(held)
    toml(folder).write_text(toml(folder).read_text() + f"\n[serve]\nport = {held.getsockname()[1]}\n")
    env.update(RELABEL_SERVE_PASSWORD="a-serve-password", RELABEL_WEBHOOK_SECRET="a-webhook-secret-of-24-chars")


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts(text: str | None):
    """A recorded fake whose tasks' texts were all replaced (None: the text field is gone)."""
    def make() -> FakeLabelStudio:
        fake = FakeLabelStudio()
        fake.items = [Item(item_id=it.item_id, data={} if text is None else {"text": text}, text=text,
                           updated_at="2026-03-01T00:00:00") for it in fake.items]
        return fake
    return make


def pulled(make):
    """Pull the changed texts first (the store changes here, before the row's command runs)."""
    def setup(folder: Path, env: dict) -> None:
        result = CliRunner().invoke(cli, ["pull"], obj={"connector": make()}, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return setup


TWO_CHOICES = ('<View><Text name="body" value="$text"/><Choices name="topic" toName="body"><Choice value="a"/>'
               '<Choice value="b"/></Choices><Choices name="mood" toName="body"><Choice value="x"/>'
               '<Choice value="y"/></Choices></View>')
INIT = ["--config", "new.toml", "init", "--project", str(PROJECT), "--store", "relabel.db", "--url", "{url}"]
GOOD_TASK = {"id": 1, "data": {"text": "goal"}, "annotations": []}

CASES = [
    # -- config file: TOML syntax, unknown keys, wrong types, secrets, bad URLs
    Case("toml-syntax", ["status"], 1, "is not valid TOML", edit_config("[review]", "[review")),
    Case("unknown-section", ["status"], 1, "Unknown section 'reveiw'", lambda f, e: toml(f).write_text(
        toml(f).read_text() + "\n[reveiw]\nbudget = 3\n")),
    Case("unknown-key", ["status"], 1, "Unknown setting 'bugdet' in [review]", add_to_section("review", "bugdet = 5")),
    Case("budget-type", ["status"], 1, "The 'budget' setting must be a positive integer. Got 'ten'.",
         edit_config("budget = 50", 'budget = "ten"')),
    Case("budget-zero", ["status"], 1, "The 'budget' setting must be a positive integer. Got 0.",
         edit_config("budget = 50", "budget = 0")),
    Case("project-type", ["status"], 1, "The 'project' setting must be a positive integer. Got '7'.",
         edit_config(f"project = {PROJECT}", f'project = "{PROJECT}"')),
    Case("show-suggestion-type", ["status"], 1, "The 'show_suggestion' setting must be true or false.",
         edit_config("show_suggestion = true", 'show_suggestion = "yes"')),
    Case("mode-value", ["status"], 1, "The 'mode' setting must be one of 'project', 'in_place'.",
         edit_config('mode = "project"', 'mode = "inplace"')),
    Case("section-not-a-table", ["status"], 1, "'store' must be a table", lambda f, e: toml(f).write_text(
        "store = 3\n" + toml(f).read_text().replace('[store]\npath = "relabel.db"', ""))),
    Case("secret-api-key-in-toml", ["status"], 1, "The config must not hold the API key",
         add_to_section("label_studio", f'api_key = "{KEY}"')),
    Case("secret-password-in-toml", ["status"], 1, "The config must not hold the API key",
         add_to_section("label_studio", f'password = "{PASSWORD}"')),
    Case("url-javascript", ["status"], 1, "The 'url' setting must be an http(s) URL", set_url("javascript:alert(1)")),
    Case("url-ftp", ["status"], 1, "The 'url' setting must be an http(s) URL", set_url("ftp://files.example")),
    Case("url-no-host", ["status"], 1, "The 'url' setting must be an http(s) URL", set_url("http://")),
    Case("url-with-password-unreachable", ["pull"], 1, "Cannot reach Label Studio at http://127.0.0.1:", no_server),
    # -- relabel serve (issue 20): a short webhook secret, a port in use
    Case("serve-secret-short", ["serve"], 1, "has 5 characters; use at least 16, e.g. export RELABEL_WEBHOOK_SECRET=",
         lambda f, e: e.update(RELABEL_SERVE_PASSWORD="a-serve-password", RELABEL_WEBHOOK_SECRET="short")),
    Case("serve-port-in-use", ["serve"], 1, "is in use (another relabel serve?); stop that process or choose another "
         "port with --port", lambda f, e: port_in_use(f, e)),
    Case("store-path-empty", ["status"], 1, "The 'path' setting in [store] must be a file path.",
         edit_config('path = "relabel.db"', 'path = ""')),
    Case("config-missing", ["--config", "nope.toml", "status"], 1, "No config file at 'nope.toml'"),
    # -- the API key
    Case("key-none", ["pull"], 1, f"set the {API_KEY_ENV} environment variable", env_key("")),
    Case("key-file-missing", ["pull"], 1, "which cannot be read", key_file(None)),
    Case("key-file-empty", ["pull"], 1, "is empty", key_file(b"\n")),
    Case("key-file-second-line", ["pull"], 1, "holds more than one line", key_file(f"{KEY}\nold-{KEY}\n".encode())),
    Case("key-file-binary", ["pull"], 1, "is not text", key_file(b"\xff\xfe" + KEY.encode())),
    Case("key-env-crlf", ["pull"], 1, "holds more than one line", env_key(f"{KEY}\r\n{KEY[::-1]}")),
    Case("key-env-non-ascii", ["pull"], 1, "holds a non-ASCII character", env_key(f"{KEY[:20]}é{KEY[20:]}")),
    Case("key-env-inner-space", ["pull"], 1, "holds spaces or control characters", env_key(f"{KEY[:20]} {KEY[20:]}")),
    # -- command-line usage (exit 2) and runtime refusals (exit 1)
    Case("budget-option-zero", ["round", "--budget", "0"], 2, "Invalid value for '--budget'", fake=True),
    Case("budget-option-negative", ["push", "--budget", "-1"], 2, "Invalid value for '--budget'", fake=True),
    Case("budget-option-text", ["round", "--budget", "ten"], 2, "'ten' is not a valid integer", fake=True),
    Case("init-project-zero", INIT[:3] + ["--url", "http://x:8080", "--project", "0"], 2,
         "Invalid value for '--project'", fake=True),
    Case("init-featurizer", INIT[:-2] + ["--url", "http://x:8080", "--featurizer", "word2vec"], 2,
         "Invalid value for '--featurizer': The 'featurizer' setting must be one of", fake=True),
    Case("init-store-blank", INIT[:5] + ["--store", " ", "--url", "http://x:8080"], 2,
         "Invalid value for '--store': The 'store' setting must be a non-empty string.", fake=True),
    Case("init-label-tag-blank", INIT[:-2] + ["--url", "http://x:8080", "--label-tag", ""], 2,
         "Invalid value for '--label-tag'", fake=True),
    Case("init-url-javascript", INIT[:-2] + ["--url", "javascript:alert(1)"], 2, "Invalid value for '--url'",
         fake=True),
    Case("report-top-zero", ["report", "--top", "0", "--out", "r.html"], 2, "Invalid value for '--top'"),
    Case("report-url-javascript", ["report", "--url", "javascript:alert(1)", "--out", "r.html"], 2,
         "Invalid value for '--url'"),
    Case("report-round-zero", ["report", "--round", "0", "--out", "r.html"], 2, "Invalid value for '--round'"),
    Case("report-round-missing", ["report", "--round", "9", "--out", "r.html"], 1, "Round 9 is not in the store"),
    Case("export-format", ["export", "--format", "xml", "--out", "x"], 2, "'xml' is not one of"),
    Case("unknown-command", ["scroe"], 2, "No such command 'scroe'"),
    Case("init-over-existing-config", ["init", "--url", "http://x:8080", "--project", str(PROJECT)], 1,
         "already exists; pass --force", fake=True),
    # -- paths
    Case("report-folder-missing", ["report", "--out", "missing/r.html"], 1, "does not exist"),
    Case("report-parent-is-a-file", ["report", "--out", "notes.txt/r.html"], 1, "Cannot write the report",
         file_named("notes.txt")),
    Case("report-unwritable-folder", ["report", "--out", "/sys/relabel-report.html"], 1,
         "Cannot write the report to '/sys/relabel-report.html' (Permission denied)"),
    Case("report-out-is-a-folder", ["report", "--out", "out"], 2, "is a directory", folder_named("out")),
    Case("export-folder-missing", ["export", "--format", "csv", "--out", "missing/x.csv"], 1,
         "Cannot write the export"),
    Case("export-parent-is-a-file", ["export", "--format", "csv", "--out", "notes.txt/x.csv"], 1,
         "Cannot write the export", file_named("notes.txt")),
    Case("config-is-a-folder", ["--config", "conf", "status"], 2, "is a directory", folder_named("conf")),
    # -- stores
    Case("store-newer-schema", ["status"], 1, "has schema version 99, newer than this relabel", newer_schema,
         bytes_unchanged=True),
    Case("store-not-sqlite", ["status"], 1, "is not a relabel store", store_bytes(b"item_id,label\n1,sport\n" * 50),
         bytes_unchanged=True),
    Case("store-foreign-sqlite", ["status"], 1, "is not a relabel store (it has no meta table)", foreign_sqlite,
         bytes_unchanged=True),
    Case("store-truncated", ["status"], 1, "is not a relabel store", truncated_store, bytes_unchanged=True),
    Case("store-is-a-folder", ["status"], 1, "is a folder", store_is_a_folder),
    Case("store-folder-missing", ["status"], 1, "of the store does not exist",
         edit_config('path = "relabel.db"', 'path = "gone/relabel.db"')),
    Case("store-other-project", ["status"], 1, f"belongs to project {PROJECT}, not project 8",
         edit_config(f"project = {PROJECT}", "project = 8")),
    # -- server answers (pull through the real connector)
    Case("server-html-200", ["pull"], 1, "with text/html instead of JSON (a proxy's login page?", routes={},
         default=(200, "text/html; charset=utf-8", HTML_LOGIN, {})),
    Case("server-redirect-to-login", ["pull"], 1, "with a redirect (302) to /login/?next=/api", routes={},
         default=(302, "text/html", b"", {"Location": "/login/?next=/api"})),
    Case("server-broken-json", ["pull"], 1, "with application/json instead of JSON", routes={},
         default=(200, "application/json", b'{"id": 7, "title": ', {})),
    Case("server-401", ["pull"], 1, "rejected the API key (401)", routes={},
         default=json_route({"detail": "Invalid token."}, 401)),
    Case("server-401-personal-token", ["pull"], 1, "rejected the API key (401); check LABEL_STUDIO_API_KEY: a "
         "personal access token works on the server that made it until it is revoked", env_key(PERSONAL), routes={},
         default=json_route({"detail": "Invalid token."}, 401), secrets=(PERSONAL,)),
    Case("server-403", ["pull"], 1, "refused GET /api/projects/7 (403)", routes={},
         default=json_route({"detail": "Forbidden"}, 403)),
    Case("server-no-project", ["pull"], 1, "There is no project 7", routes={}),
    # issue 20: a server that is not Label Studio, or Label Studio under another path, is named as such
    Case("server-not-label-studio", ["pull"], 1, "is not Label Studio's API: it answered GET /api/projects/7 with "
         "404 and an HTML page", routes={}, default=(404, "text/html", b"<html><body>Not Found</body></html>", {})),
    Case("server-wrong-path-prefix", ["pull"], 1, "(is the path '/labelstudio' in the URL right?)",
         routes=served_project(), default=(404, "text/html", b"<h1>Not Found</h1>", {})),
    Case("url-unknown-host", ["pull"], 1, "Cannot resolve the host 'no-such-host.invalid' of Label Studio's URL",
         set_url("http://no-such-host.invalid:8080")),
    Case("server-500", ["pull"], 1, "answered 500 to GET /api/projects/7", routes={},
         default=json_route({"detail": "boom"}, 500)),
    Case("server-project-is-a-list", ["pull"], 1, "answered GET /api/projects/7 with JSON relabel cannot read",
         routes={f"/api/projects/{PROJECT}": json_route([1, 2])}),
    # -- labeling configs (init through the real connector)
    Case("config-no-choices", INIT, 1, "has no <Choices> tag",
         routes=served_project('<View><Text name="body" value="$text"/></View>')),
    Case("config-two-choices", INIT, 1, "has 2 <Choices> tags ('topic', 'mood'); choose the one relabel should "
         "score with `relabel init --label-tag NAME`", routes=served_project(TWO_CHOICES)),
    Case("init-text-field-missing", INIT + ["--text-field", "body_text"], 1, "The text field 'body_text' is in none "
         "of project 7's first tasks (their data fields: text); pass --text-field",
         routes={**served_project(), "/api/tasks": json_route({"tasks": [GOOD_TASK]})}),
    Case("config-label-tag-missing", INIT + ["--label-tag", "nope"], 1, "The 'label_tag' setting is 'nope'",
         routes=served_project()),
    Case("config-one-class", INIT, 1, "needs at least 2 classes", routes=served_project(choices_config(("only",)))),
    Case("config-duplicate-class", INIT, 1, "repeats the choices 'a'",
         routes=served_project(choices_config(("a", "b", "a")))),
    Case("config-not-xml", INIT, 1, "is not valid XML", routes=served_project("<View><Choices name='x'>")),
    # -- annotations and texts (pull through the real connector)
    Case("task-without-id", ["pull"], 1, "answered the snapshot export with JSON relabel cannot read",
         routes=served_project(tasks=[{"data": {"text": "x"}, "annotations": []}])),
    Case("annotation-without-id", ["pull"], 1, "answered the snapshot export with JSON relabel cannot read",
         routes=served_project(tasks=[{**GOOD_TASK, "annotations": [{"result": [], "completed_by": 1}]}])),
    Case("annotations-not-a-list", ["pull"], 1, "answered the snapshot export with JSON relabel cannot read",
         routes=served_project(tasks=[{**GOOD_TASK, "annotations": "sport"}])),
    Case("export-not-a-list", ["pull"], 1, "answered the snapshot export with JSON relabel cannot read",
         routes=served_project(tasks={"tasks": []})),
    Case("text-missing", ["score"], 1, "Every item's text is empty; check that text_field names the field",
         pulled(texts(None)), fake=texts(None)),
    Case("text-empty", ["score"], 1, "Every item's text is empty", pulled(texts("")), fake=texts("")),
    Case("task-data-not-an-object", ["pull"], 1, "answered the snapshot export with JSON relabel cannot read",
         routes=served_project(tasks=[{**GOOD_TASK, "data": "goal!"}])),
]


# Rows whose config points at their server under a path prefix Label Studio is not served under.
PREFIXES = {"server-wrong-path-prefix": "/labelstudio"}


# ---- the test -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scored_folder(tmp_path_factory):
    """relabel.toml + relabel.db with one pushed round, made through the CLI against the recorded fake."""
    folder = tmp_path_factory.mktemp("scored")
    fake = FakeLabelStudio()
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for args in (["init", "--url", "http://ls.example:8080", "--project", str(PROJECT), "--featurizer",
                      "tfidf"], ["round", "--budget", "5"]):
            result = runner.invoke(cli, args, obj={"connector": fake}, env={API_KEY_ENV: KEY},
                                   catch_exceptions=False)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    return folder


def dump(db: Path) -> str:
    """Every row of every table, as SQL, read through a read-only connection that writes nothing."""
    if not db.is_file():
        return "<no file>"
    connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return "\n".join(connection.iterdump())
    except sqlite3.DatabaseError as exc:
        return f"<unreadable: {exc}>"
    finally:
        connection.close()


def file_state(db: Path) -> tuple:
    digest = hashlib.sha256(db.read_bytes()).hexdigest() if db.is_file() else None
    return digest, sorted(p.name for p in db.parent.glob(db.name + "-*"))


def test_the_table_has_forty_bad_inputs_of_every_kind():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"toml", "key", "url", "budget", "report", "export", "store", "server", "config", "task",
            "annotation", "text"} <= kinds


@contextlib.contextmanager
def prepared(case: Case, scored_folder: Path, tmp_path: Path, env: dict):
    """A copy of the scored folder with the row's one change made, and the row's server (if any) running.

    Yields (folder, args): the row's arguments with "{url}" pointing at its server. ``env`` may be changed by the
    row (None or "" unsets a variable).
    """
    folder = tmp_path / "work"
    shutil.copytree(scored_folder, folder)
    server = TinyServer(case.routes, case.default) if case.routes is not None else None
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        if server is not None:
            set_url(server.url + PREFIXES.get(case.id, ""))(folder, env)
        if case.setup is not None:
            case.setup(folder, env)
        yield folder, [a.replace("{url}", server.url if server else "") for a in case.args]
    finally:
        os.chdir(cwd)
        if server is not None:
            server.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_right_exit_code_no_traceback_store_unchanged(case, scored_folder, tmp_path):
    env = {API_KEY_ENV: KEY, "RELABEL_CONFIG": None, "RELABEL_DEBUG": None}
    with prepared(case, scored_folder, tmp_path, env) as (folder, args):
        store = folder / "relabel.db"
        before, before_bytes = dump(store), file_state(store)
        connector = (case.fake() if callable(case.fake) else FakeLabelStudio()) if case.fake else None
        result = CliRunner().invoke(cli, args, obj={"connector": connector} if connector else {}, env=env)
    output = result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in output, \
        f"{case.id}: {result.exception!r}\n{output}"
    assert result.exit_code == case.code, f"{case.id}: {output}"
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and case.message in errors[0], f"{case.id}: {output}"
    if case.code == 1:
        assert output.strip() == errors[0], f"{case.id}: a runtime error is the only line printed: {output}"
    for secret in (KEY, KEY[::-1], KEY[:20], PASSWORD, *case.secrets):
        assert secret not in output, f"{case.id} printed a secret: {output}"
    assert dump(store) == before, f"{case.id} changed the store"
    if case.bytes_unchanged:
        assert file_state(store) == before_bytes, f"{case.id} touched the store file"


# ---- the same, as a user runs it: a real process, stderr and all ------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("case_id", ["server-html-200", "key-env-non-ascii", "report-unwritable-folder",
                                     "key-file-second-line"])
def test_no_traceback_from_a_real_process(case_id, scored_folder, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    env = {**os.environ, API_KEY_ENV: KEY, "PYTHONPATH": str(REPO), "RELABEL_DEBUG": None, "RELABEL_CONFIG": None}
    with prepared(case, scored_folder, tmp_path, env) as (folder, args):
        done = subprocess.run([sys.executable, "-c", "from relabel.cli import main; main()", *args], cwd=folder,
                              env={k: v for k, v in env.items() if v}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and case.message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and KEY not in done.stderr and KEY[:20] not in done.stderr


def test_an_unknown_host_fails_in_under_3_seconds_naming_it(scored_folder, tmp_path):
    import time

    case = next(c for c in CASES if c.id == "url-unknown-host")
    env = {API_KEY_ENV: KEY, "RELABEL_CONFIG": None, "RELABEL_DEBUG": None}
    with prepared(case, scored_folder, tmp_path, env) as (folder, args):
        started = time.monotonic()
        result = CliRunner().invoke(cli, args, obj={}, env=env)
        seconds = time.monotonic() - started
    assert result.exit_code == 1 and "no-such-host.invalid" in result.output and seconds < 3, (seconds, result.output)
