"""Where the shared real data lives: RELABEL_SHARED_DATA, else ../shared/data beside the repository."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    path = Path(os.environ.get("RELABEL_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        # CI has this folder; a missing one is a broken set-up, not a reason to skip.
        pytest.fail(f"Shared data not found at {path}; set RELABEL_SHARED_DATA to the shared/data folder.")
    return path
