"""Filter Transition Networks (Lee et al., 2020, "Smoother Network Tuning and Interpolation for
Continuous-level Image Processing").

A small non-linear network acts on a layer's kernel and gives the kernel at the other level:
W(α) = α_0·W + α_1·FTN(W). The kernel (C_out, C_in/g, k, k) is read as C_out images of C_in/g channels and
k×k pixels, and FTN(W) = W + conv₂(PReLU(conv₁(W))) with conv₁, conv₂ 1×1 grouped convolutions over those
channels (``groups`` trades adaptation for smoothness, as in the paper). conv₁ starts as the identity and
conv₂ at zero, so FTN is the identity at conversion, as the paper prescribes, and gradients reach both from
the first step. FTN(W) does not depend on α, so the mixed kernel is affine in α.

For p > 2 (or independent ω entries) each non-reference entry gets its own FTN: copy i = FTN_i(W).
Linear layers and attention projections are (out, in) matrices: the same network with 1×1 "images".
Biases and other 1-D tensors take a full per-entry delta.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._delta import DeltaTensor, FullDelta
from .registry import Strategy, _positive_int, register_strategy


class _TransitionNet(nn.Module):
    def __init__(self, channels: int, groups: int, like: Tensor) -> None:
        super().__init__()
        self.groups = groups
        kw = {"dtype": like.dtype, "device": like.device}
        per_group = channels // groups
        eye = torch.eye(per_group, **kw).repeat(groups, 1).unsqueeze(-1)  # (channels, per_group, 1)
        self.conv1 = nn.Parameter(eye)
        self.bias1 = nn.Parameter(torch.zeros(channels, **kw))
        self.slope = nn.Parameter(torch.full((channels,), 0.25, **kw))
        self.conv2 = nn.Parameter(torch.zeros(channels, per_group, 1, **kw))
        self.bias2 = nn.Parameter(torch.zeros(channels, **kw))

    def forward(self, kernel: Tensor) -> Tensor:
        """conv₂(PReLU(conv₁(W))) on W viewed as (d0, d1, spatial): the change FTN makes to the kernel."""
        h = F.conv1d(kernel, self.conv1, self.bias1, groups=self.groups)
        h = F.prelu(h, self.slope)
        return F.conv1d(h, self.conv2, self.bias2, groups=self.groups)


class TransitionDelta(DeltaTensor):
    """Copy i = FTN_i(W) = W + Δ_i(W) for a tensor of at least 2 dimensions (module docstring)."""

    def __init__(self, base: Tensor, entries: int, reference: int, groups: int = 16) -> None:
        super().__init__(base, entries, reference)
        if base.ndim < 2:
            raise ValueError(f"an FTN needs a kernel or matrix, got a tensor of shape {tuple(base.shape)}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        channels = base.shape[1]
        self.groups = math.gcd(channels, groups)  # a group count that divides the kernel's channels
        for i in self.others:
            self.add_module(str(i), _TransitionNet(channels, self.groups, self.base))

    def _view(self) -> Tensor:
        return self.base.reshape(self.base.shape[0], self.base.shape[1], -1)

    def delta(self, entry: int) -> Tensor:
        return self._modules[str(entry)](self._view()).view_as(self.base)

    def deltas(self) -> Tensor:
        kernel = self._view()
        return torch.stack([self._modules[str(i)](kernel).view_as(self.base) for i in self.others])

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


@register_strategy
class FilterTransition(Strategy):
    """``strategy="ftn", groups=16``: see the module docstring."""

    name = "ftn"
    defaults: ClassVar[dict[str, Any]] = {"groups": 16}

    def validate(self) -> None:
        _positive_int("groups", self.options["groups"], self.name)

    def make_tensor(self, name: str, tensor: Tensor, kernels: int, reference: int) -> DeltaTensor:
        if tensor.ndim >= 2 and tensor.numel():  # an empty layer (a size-0 config) has nothing to transform
            return TransitionDelta(tensor, kernels, reference, self.options["groups"])
        return FullDelta(tensor, kernels, reference)

    def describe(self, tensors: dict[str, Tensor]) -> str:
        return f"ftn groups={self.options['groups']}"
