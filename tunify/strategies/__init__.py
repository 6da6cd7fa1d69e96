"""Other ways to build a tunable network from the same parts (L3: uses tunify.convert and tunify.layers)."""

from __future__ import annotations

from .dni import dni

__all__ = ["dni"]
