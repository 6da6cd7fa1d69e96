"""Other ways to build a tunable network from the same parts (uses tunify.convert and tunify.layers).

``tunify.convert(model, p, strategy=NAME, **options)`` takes every strategy registered here: ``kernels``
(the default, p full copies), ``lowrank``, ``atoms``, ``adafm`` and ``ftn``; :func:`dni` builds DNI from p
trained networks.
"""

from __future__ import annotations

from . import adafm, atoms, ftn, lowrank
from .dni import dni
from .registry import Strategy, get_strategy, register_strategy, strategy_names

__all__ = [
    "Strategy",
    "adafm",
    "atoms",
    "dni",
    "ftn",
    "get_strategy",
    "lowrank",
    "register_strategy",
    "strategy_names",
]
