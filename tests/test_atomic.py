"""Atomic writes publish files and folders with the usual permissions, not mkstemp's private ones."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunify._atomic import atomic_write, temp_dir_beside


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_file_gets_umask_permissions_not_private(tmp_path: Path, umask_022: None) -> None:
    atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("x"))
    assert _mode(tmp_path / "f.txt") == 0o644


def test_temp_dir_gets_umask_permissions(tmp_path: Path, umask_022: None) -> None:
    folder = temp_dir_beside(tmp_path / "model")
    assert folder.parent == tmp_path and folder.name.startswith(".model.") and folder.name.endswith(".tmp")
    assert _mode(folder) == 0o755


def test_checkpoint_files_get_umask_permissions(tmp_path: Path, umask_022: None) -> None:
    import torch

    from tunify.train import CheckpointDir

    folder = CheckpointDir(tmp_path).save(1, {"model": {"w": torch.zeros(2)}}, {"step": 1})
    assert _mode(folder) == 0o755
    assert {p.name: _mode(p) for p in folder.iterdir()} == {"model.safetensors": 0o644, "state.pt": 0o644}
