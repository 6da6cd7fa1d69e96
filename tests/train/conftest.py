"""Shared setup for the trainer tests: importable repo, one CPU thread (the test machine is shared)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # plain `pytest` (unlike `python -m pytest`) does not add the cwd
    sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import num_threads  # noqa: E402  (importable once the repo is on the path)


@pytest.fixture(autouse=True)
def _single_thread():
    with num_threads(1):
        yield
