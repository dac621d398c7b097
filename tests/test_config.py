import tomllib

import pytest

from relabel.config import API_KEY_ENV, load_config, parse_config, positive_budget, write_config
from relabel.errors import AuthError, ConfigError

BASE = {"label_studio": {"url": "http://localhost:8080", "project": 3}}


def with_(section, **values):
    raw = {k: dict(v) for k, v in BASE.items()}
    raw.setdefault(section, {}).update(values)
    return raw


def test_defaults(tmp_path):
    cfg = parse_config(BASE, base=tmp_path)
    assert cfg.label_studio.url == "http://localhost:8080" and cfg.label_studio.project == 3
    assert (cfg.review.mode, cfg.review.budget, cfg.review.show_suggestion) == ("project", 50, True)
    assert cfg.store_path == tmp_path / "relabel.db"
    assert cfg.review.data_issues == ("conflicting_duplicate", "outlier") and cfg.review.outlier_share == 0.2


@pytest.mark.parametrize("value, kinds", [(False, ()), (True, ("conflicting_duplicate", "outlier")),
                                          ("outlier", ("outlier",)), ([], ())])
def test_data_issues_setting_chooses_the_reviewed_kinds(value, kinds):
    assert parse_config(with_("review", data_issues=value)).review.data_issues == kinds


@pytest.mark.parametrize("section, key, value, message", [
    ("review", "budget", -3, "The 'budget' setting must be a positive integer. Got -3."),
    ("review", "budget", "ten", "The 'budget' setting must be a positive integer. Got 'ten'."),
    ("review", "budget", True, "The 'budget' setting must be a positive integer. Got True."),
    ("review", "mode", "inplace", "The 'mode' setting must be one of 'project', 'in_place'. Got 'inplace'."),
    ("review", "show_suggestion", "yes", "The 'show_suggestion' setting must be true or false. Got 'yes'."),
    ("label_studio", "project", 0, "The 'project' setting must be a positive integer. Got 0."),
    ("label_studio", "url", "localhost:8080", "The 'url' setting must be an http(s) URL"),
    ("label_studio", "label_tag", "", "The 'label_tag' setting must be a non-empty string."),
    ("review", "bugdet", 5, "Unknown setting 'bugdet' in [review]"),
    ("store", "path", "", "The 'path' setting in [store] must be a file path."),
    ("review", "data_issues", ["outliers"], "The 'data_issues' setting in [review] must be a list of"),
    ("review", "outlier_share", 1.5, "The 'outlier_share' setting in [review] must be a number from 0 to 1"),
])
def test_every_setting_is_validated(section, key, value, message):
    with pytest.raises(ConfigError) as err:
        parse_config(with_(section, **{key: value}))
    assert message in str(err.value)


def test_unknown_section_and_missing_project():
    with pytest.raises(ConfigError, match="Unknown section 'reveiw'"):
        parse_config({**BASE, "reveiw": {}})
    with pytest.raises(ConfigError, match="'project' setting in \\[label_studio\\] is missing"):
        parse_config({"label_studio": {"url": "http://x"}})


@pytest.mark.parametrize("raw", [with_("label_studio", api_key="abc"), {**BASE, "api_key": "abc"}])
def test_api_key_in_toml_is_refused_and_not_echoed(raw):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert API_KEY_ENV in str(err.value) and "api_key_file" in str(err.value) and "abc" not in str(err.value)


def test_api_key_read_at_call_time_env_first(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("from-file\n")
    cfg = parse_config(with_("label_studio", api_key_file="key"), base=tmp_path)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert cfg.api_key() == "from-file"
    assert "key file" in cfg.api_key_source()
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert cfg.api_key() == "from-env"
    assert API_KEY_ENV in cfg.api_key_source()


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(AuthError, match=API_KEY_ENV):
        parse_config(BASE).api_key()


def test_unreadable_key_file_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    cfg = parse_config(with_("label_studio", api_key_file="nope"), base=tmp_path)
    with pytest.raises(ConfigError, match="'api_key_file' setting points at"):
        cfg.api_key()


def test_write_then_load_round_trips_and_never_writes_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "secret-token-123")
    path = write_config(tmp_path / "relabel.toml", url="http://ls:8080/", project=12, label_tag="topic",
                        mode="in_place", budget=7, model={"featurizer": "tfidf"})
    text = path.read_text()
    assert "secret-token-123" not in text
    tomllib.loads(text)
    cfg = load_config(path)
    assert cfg.label_studio.url == "http://ls:8080" and cfg.label_studio.project == 12
    assert cfg.label_studio.label_tag == "topic" and cfg.label_studio.text_field is None
    assert (cfg.review.mode, cfg.review.budget) == ("in_place", 7)
    assert cfg.model == {"featurizer": "tfidf"}
    assert cfg.store_path == tmp_path / "relabel.db"


def test_write_refuses_to_overwrite_and_bad_values_write_nothing(tmp_path):
    path = tmp_path / "relabel.toml"
    with pytest.raises(ConfigError, match="budget"):
        write_config(path, url="http://x", project=1, budget=-1)
    assert not path.exists()
    write_config(path, url="http://x", project=1)
    with pytest.raises(ConfigError, match="already exists"):
        write_config(path, url="http://x", project=2)
    assert load_config(path).label_studio.project == 1


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="relabel init"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[label_studio\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_positive_budget_for_the_command_line():
    assert positive_budget(3) == 3
    with pytest.raises(ConfigError, match="Got 0"):
        positive_budget(0)


def test_example_config_is_valid(tmp_path):
    from pathlib import Path
    example = Path(__file__).resolve().parents[1] / "configs" / "relabel.example.toml"
    cfg = load_config(example)
    assert cfg.review.mode in ("project", "in_place") and cfg.model
