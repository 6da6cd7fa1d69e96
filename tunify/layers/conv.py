"""Tunable convolutions (1-D/2-D/3-D, plain and transposed, every padding, dilation and grouping).

A shared ω mixes the kernel once and runs one ordinary convolution. Per-sample ω folds the batch into
the groups of a single grouped convolution (``groups = B·g``): the arithmetic of the original layer,
one kernel launch, and no Python loop over samples.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import TunableLayer
from .omega import check_rows

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _fold(x: Tensor, b: int) -> tuple[Tensor, int]:
    """(B·k, C, *S) → (k, B·C, *S): each sample's channels become groups of one convolution."""
    n, c, *spatial = x.shape
    k = n // b
    return x.view(b, k, c, *spatial).transpose(0, 1).reshape(k, b * c, *spatial), k


def _unfold(y: Tensor, b: int, k: int) -> Tensor:
    """(k, B·C, *S) → (B·k, C, *S), the inverse of :func:`_fold`."""
    _, bc, *spatial = y.shape
    return y.view(k, b, bc // b, *spatial).transpose(0, 1).reshape(b * k, bc // b, *spatial)


class TunableConv(TunableLayer):
    """Tunable counterpart of ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d``."""

    def __init__(self, base_layer: nn.modules.conv._ConvNd, p: int, *, kernels: int | None = None) -> None:
        super().__init__(base_layer, p, kernels=kernels)
        self.ndim = len(base_layer.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        omega = self.omega()
        conv = self.base_layer
        unbatched = x.ndim == self.ndim + 1
        if omega.ndim == 1 or unbatched or omega.shape[0] == 1:
            tensors = self.shared_tensors(omega)
            return conv._conv_forward(x, tensors["weight"], tensors.get("bias"))
        check_rows(omega, x.shape[0], type(conv).__name__)
        alpha = self.alpha(omega)
        b = alpha.shape[0]
        tensors = self.mixed(alpha)  # weight [B, Cout, Cin/g, *k], bias [B, Cout]
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = 0
        else:
            padding = conv.padding
        weight = tensors["weight"]
        xf, k = _fold(x, b)
        y = _CONV[self.ndim](
            xf, weight.flatten(0, 1), None, conv.stride, padding, conv.dilation, conv.groups * b
        )
        y = _unfold(y, b, k)
        if "bias" in tensors:
            y = y + tensors["bias"].repeat_interleave(k, dim=0).view(*y.shape[:2], *(1,) * self.ndim)
        return y


class TunableConvTranspose(TunableLayer):
    """Tunable counterpart of ``nn.ConvTranspose1d``/``2d``/``3d`` (``output_size`` supported)."""

    def __init__(
        self, base_layer: nn.modules.conv._ConvTransposeNd, p: int, *, kernels: int | None = None
    ) -> None:
        super().__init__(base_layer, p, kernels=kernels)
        self.ndim = len(base_layer.kernel_size)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        omega = self.omega()
        conv = self.base_layer
        output_padding = conv._output_padding(
            x, output_size, conv.stride, conv.padding, conv.kernel_size, self.ndim, conv.dilation
        )
        fn = _CONV_T[self.ndim]
        unbatched = x.ndim == self.ndim + 1
        if omega.ndim == 1 or unbatched or omega.shape[0] == 1:
            tensors = self.shared_tensors(omega)
            return fn(
                x,
                tensors["weight"],
                tensors.get("bias"),
                conv.stride,
                conv.padding,
                output_padding,
                conv.groups,
                conv.dilation,
            )
        check_rows(omega, x.shape[0], type(conv).__name__)
        alpha = self.alpha(omega)
        b = alpha.shape[0]
        tensors = self.mixed(alpha)  # weight [B, Cin, Cout/g, *k]
        xf, k = _fold(x, b)
        y = fn(
            xf,
            tensors["weight"].flatten(0, 1),
            None,
            conv.stride,
            conv.padding,
            output_padding,
            conv.groups * b,
            conv.dilation,
        )
        y = _unfold(y, b, k)
        if "bias" in tensors:
            y = y + tensors["bias"].repeat_interleave(k, dim=0).view(*y.shape[:2], *(1,) * self.ndim)
        return y
