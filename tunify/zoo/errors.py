"""Exceptions of `tunify.zoo`: one class per thing a user can get wrong, so callers can catch precisely."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of every error raised by `tunify.zoo`."""


class CheckpointError(ZooError, ValueError):
    """A checkpoint file or state dict cannot be read or does not fit the network it describes."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs code execution to load; `torch.load(weights_only=True)` refused it."""


class UnknownArchitectureError(ZooError, ValueError):
    """spandrel does not recognise the architecture of a state dict."""


class UnknownModelError(ZooError, ValueError):
    """`create()` was given a name that is neither registered nor a timm model."""
