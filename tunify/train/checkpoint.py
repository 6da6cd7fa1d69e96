"""Crash-safe files: safetensors weight export and step-numbered checkpoint folders.

A run may be killed at any instant, including in the middle of saving. Every file is written atomically
(:mod:`tunify._atomic`); a checkpoint is a folder that gets its final name ``step_XXXXXXXX`` only once every
file in it is on disk, so the latest folder with that name is always complete. Leftover temporaries
(dot-names ending in ``.tmp``) are ignored and cleaned up on the next save.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from tunify._atomic import TMP_SUFFIX, atomic_write, fsync_path, save_safetensors, temp_dir_beside

_STEP_DIR = re.compile(r"^step_(\d{8})$")


def save_weights(
    model: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Export a model's weights (or a state dict, such as EMA weights) to safetensors, atomically.

    ``metadata`` (strings) goes into the file's header, where ``safe_open(...).metadata()`` reads it back.

    Example:
        >>> save_weights(trainer.inference_weights(), "out/weights.safetensors")
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    save_safetensors(state, path, metadata)


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file written by :func:`save_weights`."""
    return load_file(str(path), device=str(device))


def load_torch(path: str | os.PathLike) -> Any:
    """Load non-tensor checkpoint state without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


class CheckpointDir:
    """The ``checkpoints/`` folder of a run: save, find the latest complete one, prune old ones.

    Args:
        root: folder holding the ``step_XXXXXXXX`` checkpoint folders.
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, root: str | os.PathLike, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = (_STEP_DIR.match(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step: int) -> Path:
        """Folder of the checkpoint taken after ``step`` updates."""
        return self.root / f"step_{step:08d}"

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]], state: Any) -> Path:
        """Write ``<name>.safetensors`` per entry of ``tensors`` and ``state.pt``, then publish the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        final = self.path(step)
        tmp = temp_dir_beside(final)
        try:
            for name, state_dict in tensors.items():  # atomic_write: fsynced, and the umask's permissions
                save_safetensors(state_dict, tmp / f"{name}.safetensors")
            atomic_write(tmp / "state.pt", lambda t: torch.save(state, t))
            if final.exists():  # a re-save of the same step: move the old one aside first
                os.replace(final, self.root / f".{final.name}.old{TMP_SUFFIX}")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_path(self.root)
        self._prune()
        self._remove_temporaries()
        return final

    def load(self, path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], Any]:
        """The tensors (by file stem) and the ``state.pt`` content of one checkpoint folder."""
        path = Path(path)
        tensors = {p.stem: load_file(str(p)) for p in sorted(path.glob("*.safetensors"))}
        return tensors, load_torch(path / "state.pt")

    def _prune(self) -> None:
        for step in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(step), ignore_errors=True)

    def _remove_temporaries(self) -> None:
        for p in self.root.iterdir():
            if not (p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)):
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
