"""Exceptions of `tunify.zoo`: one class per thing a user can get wrong, so callers can catch precisely.

A checkpoint file or state dict that cannot be read or does not fit its network raises
:class:`tunify.CheckpointError` (defined in a leaf, shared with ``tunify.convert``), or a subclass below.
"""

from __future__ import annotations

from .._errors import CheckpointError

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "UnknownArchitectureError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "ZooError",
]


class ZooError(Exception):
    """Base class of the errors `tunify.zoo` raises about architectures and names (checkpoints: above)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs code execution to load; `torch.load(weights_only=True)` refused it."""


class UnknownArchitectureError(ZooError, ValueError):
    """spandrel does not recognise the architecture of a state dict."""


class UnknownModelError(ZooError, ValueError):
    """`create()` was given a name that is neither registered nor a timm model."""
