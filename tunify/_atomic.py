"""All-or-nothing writes shared by every room that saves files (weights, checkpoints, model folders).

A file or folder is built under a temporary dot-name beside its destination, fsynced, and moved into place
with ``os.replace``, so a crash leaves the previous content or nothing, never half a file. Temporaries are
created private (``mkstemp``/``mkdtemp`` use 0600/0700); they get the permissions the process's umask
gives any new file before they are published, so a saved model is as readable as one written with ``open``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file's or folder's content to disk (a folder's: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_dir_beside(target: Path) -> Path:
    """A new empty folder next to ``target`` (a dot-name ending in ``.tmp``) with the usual permissions."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=TMP_SUFFIX))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Create ``path`` all-or-nothing: ``write(tmp)`` fills a temporary file next to it, then it is swapped in.

    If ``write`` raises, or the process dies, ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_umask())
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def save_safetensors(
    state: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Write tensors to ``path`` as safetensors, all-or-nothing (``metadata``: strings for the header).

    safetensors refuses tensors that share storage; a tensor reached under several names (a module used
    twice, tied weights) is written once per name, so loading fills every name.
    """
    plain, seen = {}, set()
    for key, value in state.items():
        tensor = value.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        plain[key] = tensor.clone() if storage in seen else tensor
        seen.add(storage)
    header = {"format": "pt", **metadata} if metadata else None
    atomic_write(path, lambda tmp: save_file(plain, str(tmp), metadata=header))
