"""relabel.toml: where the Label Studio project is, how to model, how to review, where the store lives.

The API key is never read from the TOML: it comes from the LABEL_STUDIO_API_KEY environment variable or from
a key file named in the TOML, read at call time (never in class bodies or default arguments), and is never
stored or logged. Every setting is validated here, with messages like
"The 'budget' setting must be a positive integer. Got -3."
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from relabel.errors import AuthError, ConfigError
from relabel.redaction import redact

DEFAULT_CONFIG = "relabel.toml"
DEFAULT_STORE = "relabel.db"
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
# The server, when the config names none (the SDK's own variable); a url in the config wins over it.
URL_ENV = "LABEL_STUDIO_URL"
REVIEW_MODES = ("project", "in_place")
DEFAULT_BUDGET = 50
# A full pull (the whole project, to catch anything the counts could not) at most this often; the incremental pull
# in between finds new, changed and deleted labels by itself. 0 turns the periodic full pull off.
DEFAULT_FULL_PULL_HOURS = 24.0
DEFAULT_MIN_EXPECTED_ERRORS = 0.5
# Data issues that go to review (relabel/scoring/data_issues.py): a duplicate pair labelled two ways always holds
# a wrong label, so it is on by default; outliers take at most OUTLIER_SHARE of a batch, so label issues keep the
# rest of the reviewers' time.
DATA_ISSUE_KINDS = ("conflicting_duplicate", "outlier")
DEFAULT_DATA_ISSUES = DATA_ISSUE_KINDS
DEFAULT_OUTLIER_SHARE = 0.2
# Audit items per batch ([review] audit): 10% of the budget, at least MIN_AUDIT_ITEMS (10), on top of the budget.
# At this share the audited interval covers the truth in 85-95% of benchmark runs once 30 items are audited
# (benchmarks/audit.py, README "Audited estimate"); a larger share narrows it, 0 turns audits off.
DEFAULT_AUDIT = 0.1
# The featurizer written by `relabel init`: TF-IDF won the 20 Newsgroups benchmark (benchmarks/text_pipeline.py).
DEFAULT_FEATURIZER = "tfidf"
# Settings people put secrets under; refused with a message saying where the key goes instead.
_SECRET_KEYS = {"api_key", "token", "api_token", "access_token", "password", "secret"}

_SECTIONS = {
    "label_studio": {"url", "project", "label_tag", "text_field", "api_key_file", "full_pull_hours"},
    "model": None,  # validated by relabel.models.fit.ModelSettings.from_dict
    "review": {"mode", "budget", "show_suggestion", "preselect", "reviewers", "min_expected_errors", "data_issues",
               "outlier_share", "audit"},
    "store": {"path"},
    "serve": {"host", "port", "url", "username", "password_file", "webhook_secret_file", "trigger",
              "new_annotations", "every_minutes", "reconcile_seconds", "max_body_bytes", "retry_max_seconds",
              "prefill_annotators"},
}
# `relabel serve`: its secrets come from these variables or from 0600 files named in [serve], never from the TOML.
SERVE_PASSWORD_ENV = "RELABEL_SERVE_PASSWORD"
WEBHOOK_SECRET_ENV = "RELABEL_WEBHOOK_SECRET"
SERVE_TRIGGERS = ("drained", "annotations", "schedule")
# Anyone who can reach `relabel serve` can try secrets: 16 characters of a random token (~96 bits with
# token_urlsafe) cannot be guessed, a word or a short PIN can.
MIN_WEBHOOK_SECRET = 16


@dataclass(frozen=True)
class LabelStudioSettings:
    """Where the source project lives. ``label_tag``/``text_field`` choose among several Choices tags / fields."""

    url: str
    project: int
    label_tag: str | None = None
    text_field: str | None = None
    api_key_file: Path | None = None
    full_pull_hours: float | None = DEFAULT_FULL_PULL_HOURS   # None: never a periodic full pull


@dataclass(frozen=True)
class ReviewSettings:
    """How review tasks are pushed: a separate review project or in place, and how many per round."""

    mode: str = "project"
    budget: int = DEFAULT_BUDGET
    show_suggestion: bool = True
    # Off by default: a label already selected anchors the reviewer on it (the review panel still shows why).
    preselect: bool = False
    # Who decides (emails). Empty: anyone who answers a review task decides (a one-person team's setting).
    reviewers: tuple[str, ...] = ()
    # Stop signal: a round whose selected items hold fewer expected wrong labels than this pushes nothing
    # (0 turns it off). 0.5: a batch expected to fix less than half a label is not worth a reviewer's time.
    min_expected_errors: float = DEFAULT_MIN_EXPECTED_ERRORS
    # Which data issues go to review (a subset of DATA_ISSUE_KINDS; () reviews label issues only), and the
    # largest share of a batch outliers may take.
    data_issues: tuple[str, ...] = DEFAULT_DATA_ISSUES
    outlier_share: float = DEFAULT_OUTLIER_SHARE
    # Audit: random items added to each batch, on top of the budget, to measure the wrong labels left
    # (relabel/scoring/audit.py). A share of the budget (< 1, at least MIN_AUDIT_ITEMS items), a count (>= 1), 0: off.
    audit: float = DEFAULT_AUDIT

    def decides(self, who: str) -> bool:
        """Whether an answer by ``who`` (an email) is a reviewer's decision rather than an ordinary annotation."""
        return not self.reviewers or who.strip().lower() in self.reviewers


@dataclass(frozen=True)
class ServeSettings:
    """`relabel serve`: where it listens, how Label Studio reaches it, and when it starts a round by itself.

    ``trigger`` lists the round policies, any of: "drained" (every review task of the last round answered or
    skipped), "annotations" (``new_annotations`` new or changed annotations since the last round), "schedule"
    (``every_minutes`` since the last round). ``reconcile_seconds``: how often the store is brought up to date
    without a webhook (missed webhooks are harmless). ``url``: the address Label Studio calls (default
    http://host:port). The basic-auth password and the webhook secret are read by :meth:`Config.serve_password`
    and :meth:`Config.webhook_secret`.
    """

    host: str = "127.0.0.1"
    port: int = 9090
    url: str | None = None
    username: str = "relabel"
    password_file: Path | None = None
    webhook_secret_file: Path | None = None
    trigger: tuple[str, ...] = ("drained",)
    new_annotations: int = 50
    every_minutes: int = 60
    reconcile_seconds: int = 300
    # Label Studio sends every selected task in one /predict: 5 MB holds a few thousand texts of a few KB.
    max_body_bytes: int = 5_000_000
    retry_max_seconds: int = 300
    # Whether annotators of the source project open tasks with relabel's consensus pre-filled (Label Studio's
    # "Use predictions to prelabel tasks", show_collab_predictions). Off by default: pre-filled annotators anchor
    # on relabel's label, so their answers stop being independent evidence, which every consensus method here and
    # relabel's estimates of each annotator's quality assume. Predictions still reach the Data Manager.
    prefill_annotators: bool = False

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return (self.url or f"http://{host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class Config:
    """A validated relabel.toml. Relative paths in it are relative to the file's folder."""

    label_studio: LabelStudioSettings
    review: ReviewSettings = field(default_factory=ReviewSettings)
    model: dict = field(default_factory=dict)
    store_path: Path = Path(DEFAULT_STORE)
    path: Path | None = None
    serve: ServeSettings = field(default_factory=ServeSettings)

    def api_key(self) -> str:
        """The API key, read now from the environment or the key file (never cached, never logged)."""
        key = os.environ.get(API_KEY_ENV, "").strip()
        if key:
            return checked_api_key(key, f"The {API_KEY_ENV} environment variable")
        key_file = self.label_studio.api_key_file
        if key_file is not None:
            try:
                raw = key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"The 'api_key_file' setting points at {str(key_file)!r}, which cannot be read "
                                  f"({exc.strerror}); fix the path or set {API_KEY_ENV}.") from exc
            source = f"The API key file {str(key_file)!r}"
            try:
                key = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise AuthError(f"{source} is not text; put only your Label Studio access token in it.") from None
            if not key:
                raise AuthError(f"{source} is empty; put your Label Studio access token in it or set {API_KEY_ENV}.")
            return checked_api_key(key, source)
        raise AuthError(f"No Label Studio API key: set the {API_KEY_ENV} environment variable or name a file "
                        "holding it with 'api_key_file' in [label_studio].")

    def api_key_source(self) -> str:
        """Where :meth:`api_key` reads the key from, for error messages (names the variable, never the key)."""
        if os.environ.get(API_KEY_ENV, "").strip():
            return f"the {API_KEY_ENV} environment variable"
        if self.label_studio.api_key_file is not None:
            return f"the key file {str(self.label_studio.api_key_file)!r} ('api_key_file')"
        return f"the {API_KEY_ENV} environment variable (not set)"

    def serve_password(self) -> str:
        """The basic-auth password of `relabel serve` (Label Studio's ML backend connection), read now."""
        return _serve_secret(SERVE_PASSWORD_ENV, self.serve.password_file, "password_file", "basic-auth password")

    def webhook_secret(self) -> str:
        """The shared secret every webhook must carry, read now; refused when shorter than MIN_WEBHOOK_SECRET."""
        secret = _serve_secret(WEBHOOK_SECRET_ENV, self.serve.webhook_secret_file, "webhook_secret_file",
                               "webhook secret")
        if len(secret) < MIN_WEBHOOK_SECRET:
            source = (WEBHOOK_SECRET_ENV if os.environ.get(WEBHOOK_SECRET_ENV, "").strip()
                      else f"the file {str(self.serve.webhook_secret_file)!r}")
            raise ConfigError(f"The webhook secret in {source} has {len(secret)} characters; use at least "
                              f"{MIN_WEBHOOK_SECRET}, e.g. export {WEBHOOK_SECRET_ENV}=\"$(python -c 'import secrets; "
                              "print(secrets.token_urlsafe(24))')\".")
        return secret

    def model_settings(self):
        """The [model] table as relabel.models.fit.ModelSettings (raises ConfigError on unknown keys)."""
        from relabel.models.fit import ModelSettings  # imported here: the model stack is heavy and only scoring needs it
        return ModelSettings.from_dict(dict(self.model))


def example_config() -> str:
    """The commented example relabel.toml (configs/relabel.example.toml, shipped inside the package)."""
    from importlib.resources import files
    return files("relabel").joinpath("relabel.example.toml").read_text(encoding="utf-8")


def config_path(path: str | os.PathLike | None = None) -> Path:
    """The config file to use: the one given, else ./relabel.toml."""
    return Path(path) if path is not None else Path(DEFAULT_CONFIG)


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate a relabel.toml (default ./relabel.toml)."""
    file = config_path(path)
    if not file.exists():
        raise ConfigError(f"No config file at {str(file)!r}; run `relabel init --url URL --project ID` first "
                          "or pass --config PATH.")
    try:
        raw = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config file {str(file)!r} is not valid TOML ({exc}); fix that line.") from exc
    except OSError as exc:
        raise ConfigError(f"The config file {str(file)!r} cannot be read ({exc.strerror}).") from exc
    return parse_config(raw, base=file.resolve().parent, path=file)


def parse_config(raw: dict, base: Path | None = None, path: Path | None = None) -> Config:
    """Validate a parsed TOML mapping into a Config; relative paths are taken from ``base``."""
    base = base or Path.cwd()
    _refuse_secrets(raw)
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"Unknown section {unknown[0]!r} in the config; the sections are "
                          f"{', '.join(repr(s) for s in _SECTIONS)}.")
    for section, allowed in _SECTIONS.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"'{section}' must be a table ([{section}]) in the config. Got {value!r}.")
        if allowed is not None:
            extra = sorted(set(value) - allowed)
            if extra:
                raise ConfigError(f"Unknown setting {extra[0]!r} in [{section}]; the settings there are "
                                  f"{', '.join(repr(s) for s in sorted(allowed))}.")
    ls = raw.get("label_studio", {})
    if "url" not in ls and os.environ.get(URL_ENV, "").strip():
        ls = {**ls, "url": os.environ[URL_ENV].strip()}
    if "url" not in ls or "project" not in ls:
        missing = "url" if "url" not in ls else "project"
        raise ConfigError(f"The '{missing}' setting in [label_studio] is missing; run `relabel init --url URL "
                          f"--project ID` or add it to the config{f' (or set {URL_ENV})' if missing == 'url' else ''}.")
    key_file = _optional_str(ls, "api_key_file")
    label_studio = LabelStudioSettings(
        url=label_studio_url(ls["url"]),
        project=positive_int("project", ls["project"]),
        label_tag=_optional_str(ls, "label_tag"),
        text_field=_optional_str(ls, "text_field"),
        api_key_file=_resolve(key_file, base) if key_file else None,
        full_pull_hours=_full_pull_hours(ls.get("full_pull_hours", DEFAULT_FULL_PULL_HOURS)),
    )
    rv = raw.get("review", {})
    review = ReviewSettings(
        mode=review_mode(rv.get("mode", "project")),
        budget=positive_budget(rv.get("budget", DEFAULT_BUDGET)),
        show_suggestion=_bool("show_suggestion", rv.get("show_suggestion", True)),
        preselect=_bool("preselect", rv.get("preselect", False)),
        reviewers=reviewer_emails(rv.get("reviewers", [])),
        min_expected_errors=min_expected_errors(rv.get("min_expected_errors", DEFAULT_MIN_EXPECTED_ERRORS)),
        data_issues=data_issue_kinds(rv.get("data_issues", list(DEFAULT_DATA_ISSUES))),
        outlier_share=outlier_share(rv.get("outlier_share", DEFAULT_OUTLIER_SHARE)),
        audit=audit_setting(rv.get("audit", DEFAULT_AUDIT)),
    )
    _check_code_settings(raw.get("model", {}))
    store = raw.get("store", {}).get("path", DEFAULT_STORE)
    if not isinstance(store, str) or not store.strip():
        raise ConfigError(f"The 'path' setting in [store] must be a file path. Got {store!r}.")
    return Config(label_studio=label_studio, review=review, model=dict(raw.get("model", {})),
                  store_path=_resolve(store, base), path=path, serve=_serve_settings(raw.get("serve", {}), base))


def data_issue_kinds(value) -> tuple[str, ...]:
    """[review] data_issues: a list of kinds to review (false or [] for none, true for all)."""
    if value is True:
        return DATA_ISSUE_KINDS
    if value is False:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(v not in DATA_ISSUE_KINDS for v in value):
        raise ConfigError(f"The 'data_issues' setting in [review] must be a list of "
                          f"{', '.join(repr(k) for k in DATA_ISSUE_KINDS)} (or false for none). Got {value!r}.")
    return tuple(k for k in DATA_ISSUE_KINDS if k in value)


def outlier_share(value) -> float:
    """[review] outlier_share: the largest share of a review batch outliers may take, in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"The 'outlier_share' setting in [review] must be a number from 0 to 1 (0.2 = at most a "
                          f"fifth of each batch). Got {value!r}.")
    return float(value)


def _serve_settings(sv: dict, base: Path) -> ServeSettings:
    trigger = sv.get("trigger", ["drained"])
    trigger = [trigger] if isinstance(trigger, str) else trigger
    if not isinstance(trigger, list) or not trigger or any(t not in SERVE_TRIGGERS for t in trigger):
        raise ConfigError(f"The 'trigger' setting in [serve] must be one or a list of "
                          f"{', '.join(repr(t) for t in SERVE_TRIGGERS)}. Got {sv.get('trigger')!r}.")
    host = sv.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"The 'host' setting in [serve] must be an address such as '127.0.0.1'. Got {host!r}.")
    port = positive_int("port", sv.get("port", 9090))
    if port > 65535:
        raise ConfigError(f"The 'port' setting in [serve] must be a TCP port (1-65535). Got {port}.")
    url = sv.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://")) and "://" != url[-3:]):
        raise ConfigError(f"The 'url' setting in [serve] must be the http(s) address Label Studio reaches relabel "
                          f"serve at, such as 'http://10.0.0.5:9090'. Got {url!r}.")
    files = {}
    for name in ("password_file", "webhook_secret_file"):
        value = _optional_str(sv, name)
        files[name] = _resolve(value, base) if value else None
    return ServeSettings(
        host=host, port=port, url=url.rstrip("/") if url else None,
        username=_optional_str(sv, "username") or "relabel", trigger=tuple(dict.fromkeys(trigger)),
        new_annotations=positive_int("new_annotations", sv.get("new_annotations", 50)),
        every_minutes=positive_int("every_minutes", sv.get("every_minutes", 60)),
        reconcile_seconds=positive_int("reconcile_seconds", sv.get("reconcile_seconds", 300)),
        max_body_bytes=positive_int("max_body_bytes", sv.get("max_body_bytes", 5_000_000)),
        retry_max_seconds=positive_int("retry_max_seconds", sv.get("retry_max_seconds", 300)),
        prefill_annotators=_bool("prefill_annotators", sv.get("prefill_annotators", False)), **files)


def _serve_secret(variable: str, path: Path | None, setting: str, what: str) -> str:
    """A secret of `relabel serve`: the environment variable, else a file only its owner may read."""
    value = os.environ.get(variable, "").strip()
    if value:
        return value
    if path is None:
        raise ConfigError(f"No {what} for relabel serve: set {variable} or name a file holding it with "
                          f"'{setting}' in [serve] (mode 0600).")
    try:
        mode = path.stat().st_mode
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"The '{setting}' setting points at {str(path)!r}, which cannot be read ({exc.strerror}); "
                          f"fix the path or set {variable}.") from exc
    if mode & 0o077:
        raise ConfigError(f"The {what} file {str(path)!r} can be read by other users (mode {mode & 0o777:o}); "
                          f"run `chmod 600 {path}`.")
    if not value:
        raise ConfigError(f"The {what} file {str(path)!r} is empty; put the {what} in it or set {variable}.")
    return value


def _check_code_settings(model: dict) -> None:
    """A shared config is data, not code: the settings that name code are checked as soon as the file is read, so
    a refused name never reaches an import (relabel.models.classifiers)."""
    from relabel.models.classifiers import check_options, classifier_class
    if model.get("classifier") is not None:
        classifier_class(model["classifier"])
    check_options(model.get("classifier_options", {}))


def checked_api_key(key: str, source: str = f"The {API_KEY_ENV} environment variable") -> str:
    """``key`` stripped of surrounding whitespace, refused (without ever echoing it) when it cannot be a token.

    Label Studio's keys (40 hex characters, or a JWT) are printable ASCII without spaces. Anything else (a second
    line in a key file, a CR/LF, a pasted non-ASCII character) would otherwise reach the HTTP header, where httpx
    fails with an error that quotes the whole header, key included.
    """
    key = key.strip()
    if not key:
        raise AuthError(f"{source} holds no API key; put your Label Studio access token there.")
    if any(ch in "\r\n" for ch in key):
        raise AuthError(f"{source} holds more than one line; keep only the Label Studio access token, on one line.")
    if not key.isascii():
        raise AuthError(f"{source} holds a non-ASCII character; copy the access token again from Label Studio's "
                        "Account & Settings.")
    if not key.isprintable() or any(ch.isspace() for ch in key):
        raise AuthError(f"{source} holds spaces or control characters inside the key; keep only the access token.")
    return key


def positive_budget(value) -> int:
    """Validate a review budget (config or --budget)."""
    return positive_int("budget", value)


def reviewer_emails(value) -> tuple[str, ...]:
    """Validate the 'reviewers' setting: a list of emails, compared case-insensitively (Label Studio logins are)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and "@" in v for v in value):
        raise ConfigError(f"The 'reviewers' setting in [review] must be a list of emails such as "
                          f"[\"lead@example.com\"]. Got {value!r}.")
    return tuple(sorted({v.strip().lower() for v in value}))


def min_expected_errors(value) -> float:
    """Validate the stop signal's threshold: a number >= 0 (0 turns the stop signal off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"The 'min_expected_errors' setting in [review] must be a number >= 0 (0 turns the "
                          f"stop signal off). Got {value!r}.")
    return float(value)


def audit_setting(value) -> float:
    """Validate [review] audit: a share of the budget in [0, 1) (0 turns audits off) or a whole count >= 1."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (
        0 <= value < 1 or (value >= 1 and float(value).is_integer()))
    if not ok:
        raise ConfigError(f"The 'audit' setting in [review] must be a share of the budget between 0 and 1 (0.1: "
                          f"10%, at least a few items; 0 turns audits off) or a whole number of items. Got {value!r}.")
    return float(value)


def review_mode(value) -> str:
    """Validate the review mode."""
    if value not in REVIEW_MODES:
        raise ConfigError(f"The 'mode' setting must be one of {', '.join(repr(m) for m in REVIEW_MODES)}. "
                          f"Got {value!r}.")
    return value


def write_config(path: str | os.PathLike | None, *, url: str, project: int, label_tag: str | None = None,
                 text_field: str | None = None, api_key_file: str | None = None, mode: str = "project",
                 budget: int = DEFAULT_BUDGET, show_suggestion: bool = True, store: str = DEFAULT_STORE,
                 model: dict | None = None, overwrite: bool = False) -> Path:
    """Write a commented relabel.toml (validated first, so a bad value writes nothing). Never writes a key."""
    file = config_path(path)
    if file.exists() and not overwrite:
        raise ConfigError(f"The config file {str(file)!r} already exists; pass --force to overwrite it "
                          "or --config to write another file.")
    model = dict(model) if model is not None else {"featurizer": DEFAULT_FEATURIZER}
    lines = [
        "# relabel configuration, written by `relabel init`. The API key is NOT stored here: set",
        f"# {API_KEY_ENV} or name a file holding it with api_key_file.",
        "",
        "[label_studio]",
        f"url = {_toml(url)}",
        f"project = {int(project)}",
    ]
    for key, value in (("label_tag", label_tag), ("text_field", text_field), ("api_key_file", api_key_file)):
        lines.append(f"{key} = {_toml(value)}" if value else f"# {key} = \"...\"")
    lines += ["", "[model]"] + [f"{k} = {_toml(v)}" for k, v in model.items()]
    lines += ["", "[review]", f"mode = {_toml(mode)}  # \"project\" (a separate review project) or \"in_place\"",
              f"budget = {int(budget)}  # open review tasks to keep: a round tops the queue up to this",
              f"show_suggestion = {'true' if show_suggestion else 'false'}  # name relabel's suggestion in the panel",
              "preselect = false  # true: the suggestion is also pre-selected (anchors reviewers)",
              "# reviewers = [\"lead@example.com\"]  # who decides; others' answers are ordinary annotations",
              "", "[store]", f"path = {_toml(store)}", ""]
    text = "\n".join(lines)
    parse_config(tomllib.loads(text), base=file.resolve().parent)  # refuse to write what we could not read
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


# ---- validation helpers -------------------------------------------------------------------------------------
def _refuse_secrets(raw: dict) -> None:
    for section, value in raw.items():
        if section in _SECRET_KEYS or (isinstance(value, dict) and (_SECRET_KEYS & set(value))):
            raise ConfigError(f"The config must not hold the API key; remove it and set the {API_KEY_ENV} "
                              "environment variable or name a key file with 'api_key_file'.")
    serve = raw.get("serve")
    if isinstance(serve, dict) and {"password", "webhook_secret"} & set(serve):
        raise ConfigError(f"The config must not hold relabel serve's secrets; remove them and set {SERVE_PASSWORD_ENV} "
                          f"and {WEBHOOK_SECRET_ENV} or name 0600 files with 'password_file' and 'webhook_secret_file'.")


def positive_int(name: str, value) -> int:
    """Validate a positive integer setting or option, naming it in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"The '{name}' setting must be a positive integer. Got {value!r}.")
    return value


def _full_pull_hours(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"The 'full_pull_hours' setting must be a number of hours >= 0 (0 turns the periodic "
                          f"full pull off). Got {value!r}.")
    return float(value) or None


def _bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"The '{name}' setting must be true or false. Got {value!r}.")
    return value


def _optional_str(section: dict, name: str) -> str | None:
    value = section.get(name)
    return None if value is None else non_empty_string(name, value)


def non_empty_string(name: str, value) -> str:
    """Validate a string setting or option that may not be blank, naming it in the message."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"The '{name}' setting must be a non-empty string. Got {value!r}.")
    return value


def label_studio_url(value, name: str = "url") -> str:
    """Validate a Label Studio server URL: http or https with a host, nothing else (no javascript:, file:...).

    The message never shows a password given in the URL's userinfo.
    """
    ok = isinstance(value, str) and not any(ch.isspace() or not ch.isprintable() for ch in value)
    if ok:
        try:
            parts = urlsplit(value)
            parts.port  # raises ValueError for a port that is not a number
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # a port that is not a number, an unbalanced [ ] host
            ok = False
    if not ok:
        shown = redact(value) if isinstance(value, str) else value
        raise ConfigError(f"The '{name}' setting must be an http(s) URL such as 'http://localhost:8080' (the Label "
                          f"Studio server). Got {shown!r}.")
    return value.rstrip("/")


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ConfigError(f"Cannot write the value {value!r} to the config; use a string, number, boolean or list.")
