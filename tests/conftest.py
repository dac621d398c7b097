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
