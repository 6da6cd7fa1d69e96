"""The one exception for checkpoint files, shared by the rooms that read them (``tunify.zoo``, ``tunify.convert``).

It lives in a leaf so that both L1 ``zoo`` and L2 ``convert`` raise the same class: a user catches
``tunify.CheckpointError`` (also importable as ``tunify.zoo.CheckpointError`` and
``tunify.convert.CheckpointError``) whichever part of tunify read the file.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, unsafe, or does not fit the network it is loaded into."""
