"""Setting a project up: `relabel init` (``initialise``) and the Label Studio connector a config names."""
from __future__ import annotations

from typing import Callable

from connectors.records import Connector, ProjectInfo
from relabel.config import (DEFAULT_BUDGET, DEFAULT_FEATURIZER, DEFAULT_STORE, Config, config_path, parse_config,
                            write_config)
from relabel.errors import ConfigError
from relabel.loop.lock import lock_wait_seconds, writer_lock
from relabel.loop.store import Store
from relabel.redaction import url_without_userinfo


def initialise(path=None, *, url: str, project: int, label_tag: str | None = None, text_field: str | None = None,
               api_key_file: str | None = None, mode: str = "project", budget: int = DEFAULT_BUDGET,
               store: str = DEFAULT_STORE, featurizer: str | None = None, overwrite: bool = False,
               connector: Connector | Callable[[], Connector] | None = None,
               lock_wait: float = 0.0) -> ProjectInfo:
    """`relabel init`: check the settings and the connection, then write the config and bind the store.

    Order matters for "nothing half-written": everything that can fail (settings, server, key, project,
    labeling config, a store made for another project) is checked before the config file is written.
    """
    file = config_path(path)
    if file.exists() and not overwrite:
        raise ConfigError(f"The config file {str(file)!r} already exists; pass --force to overwrite it "
                          "or --config to write another file.")
    settings = dict(url=url, project=project, label_tag=label_tag, text_field=text_field,
                    api_key_file=api_key_file, mode=mode, budget=budget, show_suggestion=True, store=store,
                    model={"featurizer": featurizer or DEFAULT_FEATURIZER})
    ls = {k: v for k, v in (("url", url), ("project", project), ("label_tag", label_tag),
                            ("text_field", text_field), ("api_key_file", api_key_file)) if v is not None}
    config = parse_config({"label_studio": ls, "review": {"mode": mode, "budget": budget},
                           "store": {"path": store}, "model": settings["model"]},
                          base=file.resolve().parent, path=file)
    config.model_settings()  # a bad --featurizer fails here, not at the first scoring after the config is written
    if connector is None:
        conn = make_connector(config)
    else:
        conn = connector() if callable(connector) and not hasattr(connector, "describe") else connector
    info = conn.describe()
    _check_text_field(conn, info)
    if info.review_of is not None:
        raise ConfigError(f"Project {info.project_id} ({info.title!r}) is relabel's own review project for project "
                          f"{info.review_of}; its answers are reviews, not annotations. Use --project "
                          f"{info.review_of} (the source project) instead.")
    config.store_path.parent.mkdir(parents=True, exist_ok=True)
    with Store(config.store_path) as st, writer_lock(st, "init", wait=lock_wait_seconds(lock_wait)):
        st.check_project(info.project_id)
        write_config(file, overwrite=overwrite, **settings)
        st.bind_project(info)
        # Reports link each item to its task in Label Studio; the URL is not a secret, the key never goes here.
        st.set_meta("label_studio_url", url_without_userinfo(config.label_studio.url))
        st.log_event("init", f"project {info.project_id} {info.title!r}: {info.n_tasks} tasks, "
                             f"{info.n_annotations} annotations, classes {', '.join(info.classes)}")
    return info


def _check_text_field(conn, info: ProjectInfo) -> None:
    """The text field a round trains on must be in the tasks (a --text-field typo otherwise surfaces as "every
    item's text is empty" at the first round). Connectors that cannot list task fields are not checked."""
    fields_of = getattr(conn, "task_data_fields", None)
    if info.text_field is None or fields_of is None or not info.n_tasks:
        return
    fields = fields_of()
    if fields and info.text_field not in fields:
        raise ConfigError(f"The text field {info.text_field!r} is in none of project {info.project_id}'s first "
                          f"tasks (their data fields: {', '.join(sorted(fields))}); pass --text-field with the "
                          "field that holds the text.")


def make_connector(config: Config) -> Connector:
    """The Label Studio connector for a config (the key is read now, from the environment or the key file)."""
    from connectors.label_studio import LabelStudioConnector  # the SDK is heavy; only commands that talk need it
    ls = config.label_studio
    return LabelStudioConnector(ls.url, config.api_key(), ls.project, label_tag=ls.label_tag,
                                text_field=ls.text_field)
