"""Tensor sources: the strategy half of a tunable layer.

A tunable layer is an operation (a convolution, a linear map, attention, any module's own forward) fed by a
*source* that turns the aggregation weights α = φ(ω) into the tensors the operation runs with. The default
source holds p full copies (:class:`~tunify.layers.KernelBank`, the paper's tunable kernels); other
strategies (low-rank deltas, filter atoms, filter transition networks) are other sources. Because the
operations are written once against this interface, every source gets shared, per-sample and per-pixel ω,
baking and saving for free.

A source must be **affine in α**: tensors(α) = C + Σ_i α_i D_i. Per-pixel ω relies on it: the layer runs the
operation once with each *vertex* tensor (C and the D_i) and mixes the outputs pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")


def without_autocast(fn: Callable[..., T], alpha: Tensor, *args: Any) -> T:
    """``fn(alpha, *args)`` in the parameters' own precision, even inside ``torch.autocast``.

    Mixed tensors are cached across calls, so they must not take the dtype of whichever caller filled the
    cache, and p kernels summed in bfloat16 lose digits (baking mixes in float32 for the same reason); the
    convolution or product that uses them still casts as autocast asks.
    """
    device = alpha.device.type
    if device == "meta" or not torch.is_autocast_enabled(device):  # meta: shapes only, no autocast
        return fn(alpha, *args)
    with torch.autocast(device, enabled=False):
        return fn(alpha, *args)


class TensorSource(nn.Module):
    """Base class of sources. Subclasses implement :meth:`forward`, :meth:`reference` and :meth:`anchor`.

    Attributes:
        names: the layer's tensors this source produces (``weight``, ``bias``, ``out_proj.weight`` …).
        kernels: the length of α it takes (p, or p + 1 for independent ω entries).
        linear: True when tensors(0) = 0 (C vanishes), so per-pixel mixing skips the constant term.
    """

    names: tuple[str, ...]
    kernels: int
    linear: bool = False

    def __call__(self, alpha: Tensor) -> dict[str, Tensor]:
        return without_autocast(super().__call__, alpha)

    def forward(self, alpha: Tensor) -> dict[str, Tensor]:
        """The tensors at α: their own shapes for α of shape (kernels,), a leading B for (B, kernels)."""
        raise NotImplementedError

    def reference(self, name: str) -> Tensor:
        """The tensor a reader sees outside a call: the pretrained one the source builds on."""
        raise NotImplementedError

    def anchor(self, index: int) -> None:
        """Freeze whatever α = e_index reads, so that corner stays fixed while the rest trains."""
        raise NotImplementedError

    def vertices(self) -> tuple[dict[str, Tensor] | None, dict[str, Tensor]]:
        """(C, D): the constant tensors (None for linear sources) and the α-slopes stacked as [kernels, *shape].

        The default evaluates the source at α = 0 and at each e_i; sources that store their slopes directly
        override it.
        """
        eye = torch.eye(self.kernels, device=self._device(), dtype=self._dtype())
        at_corners = self(eye)
        if self.linear:
            return None, at_corners
        constant = self(torch.zeros(self.kernels, device=eye.device, dtype=eye.dtype))
        return constant, {name: at_corners[name] - constant[name] for name in self.names}

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype
