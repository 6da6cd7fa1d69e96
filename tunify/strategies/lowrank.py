"""Low-rank tunable kernels: copy i = W + up_i·down_i of rank r, zero at conversion (LoRA/LoCon deltas).

k(ω) = k₀ + Σ_i α_i ΔK_i with ΔK_i of rank r (``rank=``, default 4): for a k×k convolution a k×k convolution
to r channels followed by a 1×1 convolution to the output channels (the LoCon form), built as one kernel so
the layer still runs one convolution; for Linear layers and attention projections B·A. Biases and other
vectors take a full delta (C numbers per entry). An objective adds r·(C_out + C_in·k²/g) + C_out parameters
to a convolution instead of a full copy.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._delta import DeltaTensor, FullDelta
from .registry import Strategy, _positive_int, register_strategy


class _LowRankEntry(nn.Module):
    def __init__(self, rows: int, cols: int, rank: int, like: Tensor) -> None:
        super().__init__()
        # LoRA's initialisation: `down` random, `up` zero, so Δ = up·down = 0 and both get gradients
        self.down = nn.Parameter(torch.empty(rank, cols, dtype=like.dtype, device=like.device))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.up = nn.Parameter(torch.zeros(rows, rank, dtype=like.dtype, device=like.device))


class LowRankDelta(DeltaTensor):
    """Δ_i = up_i · down_i of rank r on the tensor unfolded as (shape[0], rest).

    For a k×k convolution (C_out, C_in/g, k, k) that is a k×k convolution to r channels followed by a 1×1
    convolution to C_out (the LoCon form), built here as one kernel; for a Linear or an attention projection
    it is B·A. The rank is capped at min(rows, cols), where the delta is already full rank.
    """

    def __init__(self, base: Tensor, entries: int, reference: int, rank: int) -> None:
        super().__init__(base, entries, reference)
        if base.ndim < 2:
            raise ValueError(
                f"a low-rank delta needs a tensor of at least 2 dimensions, got {tuple(base.shape)}"
            )
        self.rows, self.cols = base.shape[0], math.prod(base.shape[1:])
        self.rank = min(rank, self.rows, self.cols)
        for i in self.others:
            self.add_module(str(i), _LowRankEntry(self.rows, self.cols, self.rank, self.base))

    def delta(self, entry: int) -> Tensor:
        e = self._modules[str(entry)]
        return (e.up @ e.down).view_as(self.base)

    def deltas(self) -> Tensor:
        up = torch.stack([self._modules[str(i)].up for i in self.others])
        down = torch.stack([self._modules[str(i)].down for i in self.others])
        return torch.bmm(up, down).view(len(self.others), *self.base.shape)

    def extra_repr(self) -> str:
        return f"rank={self.rank}"


def low_rank_or_full(base: Tensor, entries: int, reference: int, rank: int) -> DeltaTensor:
    """A low-rank delta for matrices and kernels, a full one for vectors and scalars."""
    if base.ndim >= 2:
        return LowRankDelta(base, entries, reference, rank)
    return FullDelta(base, entries, reference)


@register_strategy
class LowRank(Strategy):
    """``strategy="lowrank", rank=4``: see the module docstring."""

    name = "lowrank"
    defaults: ClassVar[dict[str, Any]] = {"rank": 4}

    def validate(self) -> None:
        _positive_int("rank", self.options["rank"], self.name)

    def make_tensor(self, name: str, tensor: Tensor, kernels: int, reference: int) -> DeltaTensor:
        return low_rank_or_full(tensor, kernels, reference, self.options["rank"])

    def describe(self, tensors: dict[str, Tensor]) -> str:
        return f"lowrank r={self.options['rank']}"
