"""Tunable convolutions (1-D/2-D/3-D, plain and transposed, every padding, dilation and grouping).

A shared ω mixes the kernel once and runs one ordinary convolution. Per-sample ω folds the batch into
the groups of a single grouped convolution (``groups = B·g``): the arithmetic of the original layer in
one kernel launch. On the CPU, oneDNN's grouped convolution (its backward above all) is up to 2.5× slower
than a plain one on large feature maps and wide layers, so there each sample runs its own convolution once
a sample is large enough (:data:`LOOP_MIN_PIXELS`, :data:`LOOP_MIN_MACS`; crossovers measured on 2 cores;
depthwise convolutions, grouped already, fold up to twice the pixels). Per-sample convolutions whose kernel
is their stride (1×1, a U-Net's small 2×2 stride-2 downsampling) are one batched matrix product over the
patches, or on a small map (pooled features, a 4×4 bottleneck) one product with every vertex kernel
(:meth:`~tunify.layers.TunableLayer.per_sample_rows`). A per-pixel ω map runs the convolution with the
source's vertex kernels and mixes the outputs pixel by pixel (a convolution is linear in its kernel, so
this is exactly Σ_i α_i(x)·(k_i ∗ input)(x) + Σ_i α_i(x)·b_i), with the map resampled to the output grid.
Compiled, the other per-sample convolutions run that way too, one ω per image: inductor fails to lower
folded or per-sample convolutions once sizes are dynamic, and p convolutions with fixed kernels it lowers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SourceFactory, TunableLayer
from .omega import check_rows, map_mean, map_on_grid, note_grid, omega_form

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

LOOP_MIN_PIXELS = 56 * 56
LOOP_MIN_MACS = 4_000_000
"""From this many input pixels, or multiply-adds, per sample a CPU per-sample convolution loops over them."""


def _patch_size(conv: nn.Module, x: Tensor) -> tuple[int, ...] | None:
    """The kernel size when per-sample ω should run the convolution as one batched matrix product over
    non-overlapping patches (kernel = stride, no padding, dilation or groups), else None.

    1×1 convolutions always: a batched matmul beats a grouped convolution at any size. Larger patches (a
    U-Net's 2×2 stride-2 downsampling) on the CPU while the work per sample, counted on the output grid,
    stays under the loop bounds; beyond them oneDNN's strided convolution beats copying the input into
    patches (a ConvNeXt 2×2 downsampling at 56×56, or a ViT's patch embedding: 1.3–1.6× the time).
    """
    kernel = tuple(conv.kernel_size)
    if isinstance(conv.padding, str):  # "same" pads nothing around a 1×1 kernel
        unpadded = conv.padding == "valid" or all(k == 1 for k in kernel)
    else:
        unpadded = all(q == 0 for q in conv.padding)
    plain = all(d == 1 for d in conv.dilation) and conv.groups == 1
    if not (unpadded and plain and tuple(conv.stride) == kernel):
        return None
    if all(k == 1 for k in kernel):
        return kernel
    if not _sized_on_cpu(x):
        return None
    pixels = math.prod(s // k for s, k in zip(x.shape[2:], kernel, strict=True))
    macs = pixels * conv.in_channels * conv.out_channels * math.prod(kernel)
    return kernel if pixels < LOOP_MIN_PIXELS and macs < LOOP_MIN_MACS else None


def _patch_rows(x: Tensor, kernel: tuple[int, ...]) -> tuple[Tensor, list[int]]:
    """(B, C, *S) → (B, C·∏kernel, ∏S') and S': each column one patch, in the kernel's (C, *kernel) order."""
    b, c, *spatial = x.shape
    if all(k == 1 for k in kernel):
        return x.reshape(b, c, -1), spatial
    out = [s // k for s, k in zip(spatial, kernel, strict=True)]
    x = x[(..., *(slice(0, o * k) for o, k in zip(out, kernel, strict=True)))]  # the remainder is dropped
    n = len(kernel)
    split = x.reshape(b, c, *(d for o, k in zip(out, kernel, strict=True) for d in (o, k)))
    patches = split.permute(0, 1, *range(3, 2 + 2 * n, 2), *range(2, 2 + 2 * n, 2))
    return patches.reshape(b, c * math.prod(kernel), math.prod(out)), out


def _sized_on_cpu(x: Tensor) -> bool:
    """Whether a choice may follow ``x``'s size: on the CPU, where the bounds were measured, and eager
    (compiled or traced, a choice made on the size would fix it into the graph)."""
    return x.device.type == "cpu" and not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def _loop_over_samples(conv: nn.Module, x: Tensor, ndim: int) -> bool:
    """Whether per-sample convolutions are faster one sample at a time (see the module docstring); never
    while tracing or compiling, where a loop would fix the batch size into the graph. A depthwise
    convolution is grouped already, so folding the batch into its groups is the original operation on a
    wider input: it folds up to twice the pixels (a 32-channel 3×3 one at 64×64: 0.6× the loop's time,
    forward and backward; from about 80×80 the faster side varies from run to run)."""
    if not _sized_on_cpu(x):
        return False
    pixels = x.shape[-ndim:].numel()
    macs = pixels * conv.in_channels * conv.out_channels // conv.groups * math.prod(conv.kernel_size)
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    return macs >= LOOP_MIN_MACS or pixels >= LOOP_MIN_PIXELS * (2 if depthwise else 1)


def _fold(x: Tensor, b: int) -> tuple[Tensor, int]:
    """(B·k, C, *S) → (k, B·C, *S): each sample's channels become groups of one convolution."""
    n, c, *spatial = x.shape
    k = n // b
    return x.view(b, k, c, *spatial).transpose(0, 1).reshape(k, b * c, *spatial), k


def _unfold(y: Tensor, b: int, k: int) -> Tensor:
    """(k, B·C, *S) → (B·k, C, *S), the inverse of :func:`_fold`."""
    _, bc, *spatial = y.shape
    return y.view(k, b, bc // b, *spatial).transpose(0, 1).reshape(b * k, bc // b, *spatial)


class _TunableConvBase(TunableLayer):
    """What plain and transposed convolutions share: dispatch on the form of ω, per-pixel mixing."""

    def __init__(
        self,
        base_layer: nn.Module,
        p: int,
        *,
        kernels: int | None = None,
        source: SourceFactory | None = None,
    ) -> None:
        super().__init__(base_layer, p, kernels=kernels, source=source)
        self.ndim = len(base_layer.kernel_size)

    def _run(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int, extra: tuple) -> Tensor:
        raise NotImplementedError

    def _per_sample(self, x: Tensor, omega: Tensor, extra: tuple) -> Tensor:
        check_rows(omega, x.shape[0], type(self.base_layer).__name__)
        compiled = torch.compiler.is_compiling() and not torch.compiler.is_exporting()
        if compiled and x.shape[0] == omega.shape[0]:
            # inductor fails to lower per-sample convolutions, folded or one per sample, once their sizes
            # are dynamic (a varying batch or image size, a network compiled layer by layer around graph
            # breaks), so a compiled call mixes the vertex kernels' outputs per sample: p convolutions
            return self._per_pixel(x, omega.reshape(*omega.shape, *(1,) * self.ndim), extra)
        tensors = self.source(self.alpha(omega))  # weight [B, *shape], bias [B, Cout]
        b = omega.shape[0]
        if _loop_over_samples(self.base_layer, x, self.ndim):
            # unbind, not indexing: its backward stacks the B gradients once instead of adding B full-size
            # zero-padded ones
            weights = tensors["weight"].unbind()
            biases = tensors["bias"].unbind() if "bias" in tensors else (None,) * b
            rows = x.chunk(b)  # sample i's k consecutive rows
            outs = [self._run(r, w, c, None, extra) for r, w, c in zip(rows, weights, biases, strict=True)]
            return torch.cat(outs)
        xf, k = _fold(x, b)
        weight = tensors["weight"].flatten(0, 1)
        bias = tensors.get("bias")  # [B, Cout] flattened is the folded convolution's bias, sample-major
        bias = None if bias is None else bias.flatten()
        return _unfold(self._run(xf, weight, bias, self.base_layer.groups * b, extra), b, k)

    def _per_pixel(self, x: Tensor, omega: Tensor, extra: tuple) -> Tensor:
        constant, slopes = self.vertices()
        weights, biases = slopes["weight"], slopes.get("bias")

        def vertex(i: int) -> Tensor:
            return self._run(x, weights[i], None if biases is None else biases[i], None, extra)

        y = vertex(0)
        grid = y.shape[2:]
        alpha = self.alpha(map_on_grid(omega, grid)).to(y.dtype)  # [B, kernels, *S']: φ may be wider
        if torch.is_grad_enabled() or torch.compiler.is_compiling():  # autograd keeps each output for α
            y = alpha[:, :1] * y
            for i in range(1, self.kernels):
                y = y + alpha[:, i : i + 1] * vertex(i)
        else:  # in place: one pass over the output per kernel instead of three
            y.mul_(alpha[:, :1])
            for i in range(1, self.kernels):
                y.addcmul_(alpha[:, i : i + 1], vertex(i))
        if constant is not None:
            y = y + self._run(x, constant["weight"], constant.get("bias"), None, extra)
        note_grid(grid)
        return y

    def _dispatch(self, x: Tensor, extra: tuple) -> Tensor:
        """Mix and run as this call's ω asks (each forward first takes what the cache epoch vouches for)."""
        omega = self.omega()
        form = omega_form(omega)
        unbatched = x.ndim == self.ndim + 1  # one sample
        if form == "map" and (
            omega.ndim - 2 != self.ndim or (not unbatched and x.shape[0] != omega.shape[0])
        ):
            # no image grid to follow: a grid of other dimensions (timm's lambda layers run a Conv3d over 2-D
            # features) or patches and windows folded into the batch, so each image's average ω
            omega = map_mean(omega)
            form = omega_form(omega)
        if form == "shared" or unbatched:
            if form == "map":
                return self._per_pixel(x.unsqueeze(0), omega, extra).squeeze(0)
            tensors = self.shared_tensors(omega)
            return self._run(x, tensors["weight"], tensors.get("bias"), None, extra)
        if form == "map":
            return self._per_pixel(x, omega, extra)
        return self._per_sample(x, omega, extra)


class TunableConv(_TunableConvBase):
    """Tunable counterpart of ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d``."""

    def _per_sample(self, x: Tensor, omega: Tensor, extra: tuple) -> Tensor:
        kernel = _patch_size(self.base_layer, x)
        if kernel is None or x.shape[0] != omega.shape[0]:
            return super()._per_sample(x, omega, extra)
        b = x.shape[0]
        rows, spatial = _patch_rows(x, kernel)
        if self.uses_vertices(b, rows.shape[2]):  # pooled features, a small bottleneck map
            return self.per_sample_rows(rows, omega).view(b, -1, *spatial)
        tensors = self.source(self.alpha(omega))
        weight = tensors["weight"].reshape(b, -1, rows.shape[1])  # [B, Cout, Cin·∏kernel]
        if "bias" in tensors:
            y = torch.baddbmm(tensors["bias"].unsqueeze(2), weight, rows)
        else:
            y = torch.bmm(weight, rows)
        return y.view(b, -1, *spatial)

    def _run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int | None, extra: tuple
    ) -> Tensor:
        conv = self._modules["base_layer"]
        if groups is None:
            return conv._conv_forward(x, weight, bias)
        padding = conv.padding
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = 0
        return _CONV[self.ndim](x, weight, bias, conv.stride, padding, conv.dilation, groups)

    def forward(self, x: Tensor) -> Tensor:
        tensors = self.cached_shared()
        if tensors is not None:  # applied again at the same shared ω: the original's call, mixed kernel
            return self._modules["base_layer"]._conv_forward(x, tensors["weight"], tensors.get("bias"))
        return self._dispatch(x, ())


class TunableConvTranspose(_TunableConvBase):
    """Tunable counterpart of ``nn.ConvTranspose1d``/``2d``/``3d`` (``output_size`` supported)."""

    def _run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int | None, extra: tuple
    ) -> Tensor:
        conv = self.base_layer
        (output_padding,) = extra
        fn = _CONV_T[self.ndim]
        groups = conv.groups if groups is None else groups
        return fn(x, weight, bias, conv.stride, conv.padding, output_padding, groups, conv.dilation)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        conv = self.base_layer
        output_padding = conv._output_padding(
            x, output_size, conv.stride, conv.padding, conv.kernel_size, self.ndim, conv.dilation
        )
        tensors = self.cached_shared()
        if tensors is not None:  # applied again at the same shared ω
            return self._run(x, tensors["weight"], tensors.get("bias"), None, (output_padding,))
        return self._dispatch(x, (output_padding,))
