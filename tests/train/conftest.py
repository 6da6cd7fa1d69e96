"""Shared setup for the trainer tests: importable repo, one CPU thread (the test machine is shared)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # plain `pytest` (unlike `python -m pytest`) does not add the cwd
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
