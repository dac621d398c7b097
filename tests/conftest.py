"""Shared pytest fixtures."""


# --- Label Studio: one private server for the whole session --------------------------------------------------
import pytest  # noqa: E402

LABEL_STUDIO_ADMIN = "admin@example.com"
LABEL_STUDIO_PASSWORD = "relabel-admin-pass"


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A private Label Studio on 127.0.0.1 with its data in a temporary dir (first start migrates, ~30-70 s)."""
    from relabel.server import start_label_studio

    import os

    data_dir = tmp_path_factory.mktemp("label_studio")
    # SSRF protection off: tests/test_service.py registers webhooks and an ML backend on 127.0.0.1.
    # The first start migrates (30-70 s idle); on a loaded machine RELABEL_LS_START_TIMEOUT gives it longer.
    server = start_label_studio(data_dir, username=LABEL_STUDIO_ADMIN, password=LABEL_STUDIO_PASSWORD,
                                ssrf_protection=False,
                                timeout=float(os.environ.get("RELABEL_LS_START_TIMEOUT", 180)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls_admin(label_studio):
    """An SDK client with the admin's legacy token and keep-alive off."""
    from label_studio_helpers import admin_client

    return admin_client(label_studio.url, label_studio.api_key)


@pytest.fixture(scope="session")
def acceptance_project(ls_admin):
    """The issue-4 acceptance project (300 tasks, 4 annotators, skips, unlabelled tasks) and its truth.

    Session-scoped and shared: tests must not change it (build their own project to write to).
    """
    from label_studio_helpers import build_acceptance_project

    return build_acceptance_project(ls_admin, seed=4)


@pytest.fixture
def workdir(tmp_path, monkeypatch, label_studio):
    """A fresh working directory whose relabel commands talk to the session's Label Studio as its admin."""
    from relabel.config import API_KEY_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, label_studio.api_key)
    return tmp_path


# --- cleanlab as an exact oracle -----------------------------------------------------------------------------


@pytest.fixture
def stable_cleanlab(monkeypatch):
    """cleanlab with a stable argsort: the exact reference for every output, including tie-breaks (relabel's sorts
    are stable; cleanlab's default quicksort orders equal scores arbitrarily)."""
    import warnings

    import numpy as np

    unstable = np.argsort

    def stable_argsort(a, axis=-1, kind=None, order=None, **kwargs):
        return unstable(a, axis=axis, kind=kind or "stable", order=order, **kwargs)

    monkeypatch.setattr(np, "argsort", stable_argsort)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
