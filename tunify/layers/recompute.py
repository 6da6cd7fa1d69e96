"""Which ω a checkpointed segment ran at, when autograd recomputes it during ``backward()``.

Gradient checkpointing re-runs parts of a forward pass in backward, after the call that set ω has returned.
A layer's own memory (the ω of its last forward) is right as long as each forward is followed by its
backward. It is wrong, silently, when a network runs forward at two ω before one backward (``loss =
f(x, ω1) + f(x, ω2)``): both segments would be recomputed at ω2.

:class:`ForwardCalls` keeps, per converted network, the ω of each forward call whose autograd graph is
still alive: a token hung on the outputs' ``grad_fn`` lives exactly as long as the graph. A backward pass
claims the one call alive that no other backward pass has claimed; when several calls at different ω are
alive, it cannot tell which one it is recomputing and says so instead of computing wrong gradients.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves

_METADATA_KEY = "tunify_forward_call"


class AmbiguousRecomputationError(RuntimeError):
    """A checkpointed segment is recomputed while forward calls at different ω are awaiting backward."""


class _Token:
    """Lives as long as the autograd graph of one forward call (held in its output nodes' metadata)."""


class _Call:
    def __init__(self, omega: Tensor, token: _Token) -> None:
        self.omega = omega
        self.alive = weakref.ref(token)
        self.claimed_by: int | None = None  # the backward pass (graph task) that recomputed it


class ForwardCalls:
    """The ω of a network's forward calls whose graph is alive; shared by all of that network's layers."""

    def __init__(self) -> None:
        self._calls: list[_Call] = []

    def record(self, omega: Tensor, outputs: Any) -> None:
        """Note a forward call at ``omega`` whose ``outputs`` carry its autograd graph (none: nothing to
        recompute, so nothing is noted)."""
        nodes = [t.grad_fn for t in tree_leaves(outputs) if isinstance(t, Tensor) and t.grad_fn is not None]
        if not nodes:
            return
        token = _Token()
        for node in nodes:
            node.metadata[_METADATA_KEY] = token
        self._calls = [c for c in self._calls if c.alive() is not None]
        self._calls.append(_Call(omega, token))  # not detached: a recomputation may need its gradient

    def for_backward(self, where: str) -> Tensor | None:
        """The ω of the call the running backward pass recomputes; None when no recorded call is alive.

        Raises:
            AmbiguousRecomputationError: several calls at different ω are alive and unclaimed.
        """
        task = torch._C._current_graph_task_id()
        alive = [c for c in self._calls if c.alive() is not None]
        mine = [c for c in alive if c.claimed_by == task]
        if mine:
            return mine[-1].omega
        free = [c for c in alive if c.claimed_by is None]
        if not free:
            return None
        if any(not _same(c.omega, free[0].omega) for c in free[1:]):
            raise AmbiguousRecomputationError(
                f"{where}: a gradient-checkpointed segment is recomputed in backward while {len(free)} forward "
                "calls at different omegas hold autograd graphs no backward has used (loss = f(x, ω1) + "
                "f(x, ω2), or an output kept from a call made outside torch.no_grad()), so tunify cannot "
                "tell which omega the segment ran at: call backward after each forward, make calls you do "
                "not train on under torch.no_grad(), or turn checkpointing off for such losses"
            )
        for call in free:
            call.claimed_by = task
        return free[-1].omega

    def __deepcopy__(self, memo: dict) -> ForwardCalls:
        return ForwardCalls()  # a copy has run no forward call yet

    def __getstate__(self) -> dict:
        return {"_calls": []}


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.device == b.device and bool(torch.equal(a, b))
