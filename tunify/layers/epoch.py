"""Inference-cache epochs: a converted network checks its layers' caches once per call, not once per layer.

Each tunable layer keeps what it mixed at inference (:meth:`~tunify.layers.reader.OmegaReader.cached`) and,
alone, checks on every call that ω and every parameter it mixed from are unchanged. Between the convolutions
of a real network those checks cost more than they do in a loop: with them NAFNet's forward at a shared ω ran
at 1.08–1.11× the original at 4 × 64×64 on one CPU thread, 1.04–1.05× without (benchmarks/README.md). A
:class:`~tunify.TunableModel` called at a shared ω without autograd instead checks every layer's parameters in
one pass (:class:`EpochKeeper`) and, while ω and all of them are as they were on its last call, hands the
layers the same :class:`CacheEpoch`; an entry a layer made in that epoch is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from .inventory import Watched
from .reader import OmegaReader, omega_key, structure_edits, weights_key


class CacheEpoch:
    """One state of ω and of the parameters of every module in ``readers`` (ids); compared by identity."""

    __slots__ = ("readers",)

    def __init__(self, readers: frozenset[int]) -> None:
        self.readers = readers


class EpochKeeper:
    """A converted network's current :class:`CacheEpoch`: the same object while nothing it watches changes.

    It watches the layers the network lists (:func:`~tunify.layers.inventory.list_readers`); a tunable
    module added to the network after that is not in the epoch and checks its cache itself. An edit between
    two calls always shows (the next call's check differs from the epoch's); an edit inside a call, between
    two runs of the same layer, would not. Copies and pickles start afresh.

    The ``_parameters`` dicts it reads are gathered once per list of layers and again after any tunable
    module's φ, source or parameter dict is reassigned (:func:`~tunify.layers.reader.structure_edits`): asking
    every layer for them on every call cost as much as reading the parameters (~1.5 % of NAFNet's forward).
    """

    def __init__(self) -> None:
        self._last: tuple[tuple, CacheEpoch, Tensor] | None = None
        self._dicts: tuple[Sequence, int, list[dict[str, Any]]] | None = None

    def epoch(self, omega: Tensor, readers: Sequence[tuple[OmegaReader, Watched]]) -> CacheEpoch | None:
        """The epoch of a call at ``omega`` (a shared ω, no autograd) of a network whose tunable modules are
        ``readers``; None when a parameter has no version counter (made under ``torch.inference_mode``),
        whose changes cannot be seen, or no data (a tracer's fake tensors)."""
        try:
            weights = weights_key(self._watched_dicts(readers))
        except RuntimeError:
            self._dicts = None  # gathered afresh next call: a tracer may have replaced the dicts
            return None
        key = (omega_key(omega), weights)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        epoch = CacheEpoch(frozenset(id(reader) for reader, _ in readers))
        self._last = (key, epoch, omega)  # ω kept alive: its id stays its own
        return epoch

    def _watched_dicts(self, readers: Sequence[tuple[OmegaReader, Watched]]) -> list[dict[str, Any]]:
        edits, known = structure_edits(), self._dicts
        if known is None or known[0] is not readers or known[1] != edits:
            known = self._dicts = (readers, edits, [params for _, watched in readers for params in watched()])
            self._last = None  # another layer list or a reassigned module: a new epoch
        return known[2]

    def __reduce__(self) -> tuple[Any, ...]:
        return EpochKeeper, ()
