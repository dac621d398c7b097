"""Security: keys never printed, planted symlinks never followed, newer stores never touched, no credentials in URLs
that relabel stores or links, and Label Studio's tokens in a folder only the owner can enter."""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
from click.testing import CliRunner

from relabel.atomic_files import atomic_write
from relabel.cli import cli
from relabel.config import API_KEY_ENV, checked_api_key, label_studio_url
from relabel.errors import AuthError, ConfigError, ConnectorError, StoreError
from relabel.redaction import redact, url_without_userinfo
from relabel.loop.store import Store
from relabel.loop.store_schema import SCHEMA_VERSION
from test_rounds import FakeLabelStudio

KEY = "9c2e4b6d8f0a3f9a1c7e5b2d4a6f8e0c1b3d5f7a"


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """A folder with relabel.toml and a store holding one pushed round (through the CLI, recorded fake)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, KEY)
    runner = CliRunner()
    for args in (["init", "--url", "http://ls.example:8080", "--project", "7", "--featurizer", "tfidf"],
                 ["round", "--budget", "5"]):
        result = runner.invoke(cli, args, obj={"connector": FakeLabelStudio()}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return tmp_path


# ---- the key -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, problem", [
    (f"{KEY}\r\n", None),                                   # surrounding whitespace is stripped, not refused
    (f"{KEY}\nsecond line", "more than one line"),
    (f"{KEY}\r{KEY}", "more than one line"),
    (f"{KEY[:10]}\u00a0{KEY[10:]}", "non-ASCII"),
    (f"{KEY[:10]}\t{KEY[10:]}", "spaces or control characters"),
])
def test_a_key_is_stripped_and_validated_without_ever_being_echoed(bad, problem):
    if problem is None:
        assert checked_api_key(bad) == KEY
        return
    with pytest.raises(AuthError) as err:
        checked_api_key(bad, "The key file 'k'")
    assert problem in str(err.value) and "The key file 'k'" in str(err.value)
    assert KEY[:10] not in str(err.value) and KEY[10:] not in str(err.value)


def test_redaction_removes_tokens_bearers_userinfo_and_the_key_itself():
    text = (f"Illegal header value b'Token {KEY}\\nold' / Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig, "
            f"at http://admin:s3cret-pass@ls.example:8080/api and key={KEY}")
    clean = redact(text, KEY)
    assert KEY not in clean and "eyJhbGciOi" not in clean and "s3cret-pass" not in clean and "admin" not in clean
    assert "Token [redacted]" in clean and "Bearer [redacted]" in clean and "http://[redacted]@ls.example:8080" in clean
    assert redact("the token limit was reached") == "the token limit was reached"   # prose stays readable
    assert url_without_userinfo("https://bob:pw@ls.example/x") == "https://ls.example/x"


@pytest.mark.parametrize("message", [
    f"Illegal header value b'Token {KEY}\\n'",               # what httpx said when the key file had a second line
    f"request to http://bob:{KEY}@ls.example:8080 failed",    # a password in the URL
    f"unexpected answer echoing Bearer {KEY}",
])
@pytest.mark.parametrize("error", [ConnectorError, RuntimeError])
def test_no_error_path_prints_the_key(scored, message, error):
    class Leaky(FakeLabelStudio):
        def pull(self, since=None, reconcile=False):
            raise error(message)
    result = CliRunner().invoke(cli, ["pull"], obj={"connector": Leaky()})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert KEY not in result.output and "[redacted]" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_url_password_is_in_no_error_no_store_and_no_report_link(scored):
    with pytest.raises(ConfigError) as err:
        label_studio_url("javascript://admin:s3cret-pass@x/%0aalert(1)")
    assert "s3cret-pass" not in str(err.value)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", "other.toml", "init", "--url", "http://admin:s3cret-pass@ls.example:8080",
                                 "--project", "7", "--store", "relabel.db"], obj={"connector": FakeLabelStudio()})
    assert result.exit_code == 0, result.output
    with Store("relabel.db") as store:
        dumped = "\n".join(store.db.conn.iterdump())
    assert "s3cret-pass" not in dumped and "http://ls.example:8080" in dumped
    assert runner.invoke(cli, ["--config", "other.toml", "report", "--out", "r.html"]).exit_code == 0
    page = (scored / "r.html").read_text()
    assert "s3cret-pass" not in page and 'href="http://ls.example:8080/projects/7/data?task=' in page


def test_a_javascript_url_is_refused_at_init_and_for_report_links(scored):
    runner = CliRunner()
    for args in (["--config", "js.toml", "init", "--url", "javascript:alert(1)", "--project", "7"],
                 ["report", "--url", "javascript:alert(document.domain)//", "--out", "r.html"]):
        result = runner.invoke(cli, args, obj={"connector": FakeLabelStudio()})
        assert result.exit_code == 2 and "Invalid value for '--url'" in result.output, result.output
    assert not (scored / "js.toml").exists() and not (scored / "r.html").exists()


# ---- files written atomically, never through a planted link -----------------------------------------------
@pytest.mark.parametrize("args, out", [(["export", "--format", "csv", "--out", "labels.csv"], "labels.csv"),
                                       (["report", "--out", "report.html"], "report.html")])
def test_a_planted_partial_symlink_is_not_followed(scored, args, out):
    victim = scored / "victim.txt"
    victim.write_text("precious\n")
    planted = scored / f"{out}.partial"
    planted.symlink_to(victim)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"                      # the link's target is untouched
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert (scored / out).is_file() and not (scored / out).is_symlink() and (scored / out).stat().st_size > 100
    assert sorted(p.name for p in scored.iterdir() if p.name.endswith(".partial")) == [planted.name]


def test_an_output_that_is_a_symlink_is_replaced_not_written_through(scored):
    victim = scored / "victim.txt"
    victim.write_text("precious\n")
    (scored / "labels.csv").symlink_to(victim)
    assert CliRunner().invoke(cli, ["export", "--format", "csv", "--out", "labels.csv"]).exit_code == 0
    assert victim.read_text() == "precious\n" and not (scored / "labels.csv").is_symlink()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old report")
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write("half a new rep")
            raise RuntimeError("killed half way")
    assert out.read_text() == "old report" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
    with atomic_write(out) as f:
        f.write("new report")
    assert out.read_text() == "new report"
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())   # the mode any new file of the user gets


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_report_folder_is_one_line(scored):
    locked = scored / "locked"
    locked.mkdir(mode=0o500)
    result = CliRunner().invoke(cli, ["report", "--out", "locked/r.html"])
    assert result.exit_code == 1 and result.output.startswith("Error: Cannot write the report")
    assert list(locked.iterdir()) == []


# ---- a newer store --------------------------------------------------------------------------------------------
def test_a_store_with_a_newer_schema_is_refused_byte_for_byte_unchanged(scored):
    db = scored / "relabel.db"
    con = sqlite3.connect(db)
    with con:
        con.execute("update meta set value = ? where key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
        # what a newer relabel might have added, which this one must neither drop nor "fix"
        con.execute("create table lock (owner text)")
    con.execute("pragma journal_mode=delete")
    con.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    before = sorted(p.name for p in scored.iterdir())     # the db and what the scored round left beside it
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this relabel .*upgrade"):
        Store(db)
    for args in (["status"], ["pull"], ["round"], ["export", "--format", "csv", "--out", "x.csv"],
                 ["report", "--out", "r.html"]):
        result = CliRunner().invoke(cli, args, obj={"connector": FakeLabelStudio()})
        assert result.exit_code == 1 and "newer than this relabel" in result.output, (args, result.output)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in scored.iterdir()) == before        # no journal, no export, no report
    assert not any((scored / f"relabel.db{suffix}").exists() for suffix in ("-wal", "-shm", "-journal"))


# ---- the demo's Label Studio data -----------------------------------------------------------------------------
def test_label_studio_data_folders_are_private_even_when_they_existed(tmp_path):
    from relabel.server import private_dir

    loose = tmp_path / "a" / "label-studio"
    loose.mkdir(parents=True, mode=0o755)
    os.chmod(loose, 0o755)
    assert private_dir(loose) == loose.resolve()
    assert oct(loose.stat().st_mode & 0o777) == "0o700"
    fresh = private_dir(tmp_path / "b" / "c")
    assert oct(fresh.stat().st_mode & 0o777) == "0o700"
