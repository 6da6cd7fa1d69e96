"""α = φ(ω) for every tunable layer of a per-sample call in one product.

Each tunable layer and tensor maps ω through its own φ, an affine map ℝ^p → ℝ^kernels. Run layer by layer,
those small products and their autograd nodes cost NAFNet (82 maps) 6 % of its per-sample training step at
4 × 64×64 on a CPU. A converted network instead hands its layers an :class:`AlphaTable`: on the first request
it concatenates every φ into one ``F.linear`` and splits the result, so each layer reads its α as a slice
(equal to its own product up to float rounding: one unit in the last place).

Where slices would break autograd's bookkeeping, layers map ω themselves: while saved-tensor hooks are active
(non-reentrant gradient checkpointing records a segment's saved tensors and recomputes it later without the
table, so both runs must save the same ones), during backward, and with autograd on when the table was made
without it (inside a reentrant checkpoint's forward).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .inventory import Watched
from .omega import in_backward
from .reader import OmegaReader, transform_active
from .source import without_autocast

_saved_tensor_hooks: Callable[[bool], Any] | None = getattr(
    torch._C._autograd, "_top_saved_tensors_default_hooks", None
)
"""The innermost saved-tensor hooks (gradient checkpointing, ``save_on_cpu``), or None: torch has no public
way to ask. Where it is missing, hooks are assumed active and the table is not used."""


def _plain_autograd() -> bool:
    """Whether a slice of the table may stand in for a layer's own product: no saved-tensor hooks, no
    backward pass."""
    return _saved_tensor_hooks is not None and _saved_tensor_hooks(False) is None and not in_backward()


class AlphaTable:
    """Every listed reader's α at one call's ω, computed on first request in one product per group of φ
    maps that agree in input size and dtype."""

    def __init__(self, omega: Tensor, readers: Sequence[tuple[OmegaReader, Watched]]) -> None:
        self.omega = omega
        self._readers = readers
        self._rows: dict[int, Tensor] | None = None
        self._with_grad = False

    @classmethod
    def for_call(cls, omega: Tensor, readers: Sequence[tuple[OmegaReader, Watched]]) -> AlphaTable | None:
        """A table for a call at a per-sample ``omega`` (B, p) of a network whose tunable modules are
        ``readers`` (:func:`~tunify.layers.inventory.list_readers`). None for a map (layers resample it),
        under ``torch.compile``, inside ``torch.func`` transforms, and for a shared ω: there each layer maps ω
        with the very product :func:`tunify.bake` uses, so a baked network agrees with the live one to the
        bit (an iterative network such as RAFT grows a last-place difference in α to 1e-5)."""
        per_sample = omega.ndim == 2 and omega.shape[0] > 1
        if not per_sample or torch.compiler.is_compiling() or transform_active():
            return None
        return cls(omega, readers)

    def row(self, reader: OmegaReader, omega: Tensor) -> Tensor | None:
        """``reader``'s α when ``omega`` is the table's ω and a slice may be used, else None."""
        if omega is not self.omega or not _plain_autograd():
            return None
        grad = torch.is_grad_enabled()
        if self._rows is None:
            self._rows, self._with_grad = without_autocast(self._build, omega), grad
        elif grad and not self._with_grad:
            return None  # made without autograd: its slices would cut φ off from the gradient
        return self._rows.get(id(reader))

    def _build(self, omega: Tensor) -> dict[int, Tensor]:
        groups: dict[tuple, list[tuple[int, nn.Linear]]] = {}
        for reader, _ in self._readers:
            phi = reader._modules.get("phi")
            if isinstance(phi, nn.Linear) and phi.bias is not None and phi.weight.device == omega.device:
                key = (phi.weight.dtype, phi.in_features)
                groups.setdefault(key, []).append((id(reader), phi))
        rows: dict[int, Tensor] = {}
        for (dtype, p), members in groups.items():
            if p != omega.shape[-1]:
                continue
            weight = torch.cat([phi.weight for _, phi in members])
            bias = torch.cat([phi.bias for _, phi in members])
            alpha = F.linear(omega.to(dtype), weight, bias)
            sizes = [phi.out_features for _, phi in members]
            rows.update(zip((key for key, _ in members), alpha.split(sizes, dim=-1), strict=True))
        return rows
