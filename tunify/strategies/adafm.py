"""AdaFM, Adaptive Feature Modification (He, Dong, Qiao, CVPR 2019).

After each convolution a depthwise filter and bias act on its output, y ↦ g(α) ∗ y + b(α), with one filter
per ω entry besides the reference entry and the identity at the reference entry:

    g(α) = (Σ_i α_i)·δ + Σ_{i≠r} α_i·Δg_i,   b(α) = Σ_{i≠r} α_i·b_i,   Δg_i = b_i = 0 at conversion.

For p = 2 on the simplex α = (1 − λ, λ) and this is the paper's g' = δ + λ(g − δ), b' = λ·b; p > 2 and
independent ω entries give one filter per entry. The filter is a tunable depthwise convolution (odd
``kernel_size``, default 1, the paper's released denoiser; the paper also uses 3, 5, 7), so shared,
per-sample and per-pixel ω work as for any tunable layer. The converted convolution itself stays a plain,
shared layer; :func:`tunify.anchor` at the reference entry freezes it with φ, so ω = e_r stays the pretrained
network exactly.

The converted layer becomes :class:`FilteredConv` ``(conv, filter)``, an ``nn.Sequential`` whose ``weight``,
``bias`` and other attributes are the convolution's: its state-dict keys gain ``.0``/``.1`` and a baked
network keeps the depthwise layers (plain ``nn.Conv2d``, groups = C), so it has the original's parameters plus
C·(k² + 1) per convolution. Only convolutions are supported: Linear layers, attention and
named tensors raise :class:`~tunify.ConversionError`. A transposed convolution called with ``output_size``
cannot pass it through the ``nn.Sequential``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tunify.convert import ConversionError
from tunify.layers import LayerContainer, SourceFactory, TunableConv

from ._delta import DeltaTensor, FullDelta
from .registry import LayerFactory, Strategy, register_strategy

_DEPTHWISE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def identity_depthwise(channels: int, ndim: int, kernel_size: int, like: Tensor) -> nn.Module:
    """A depthwise convolution with bias that computes the identity (a centred unit impulse per channel)."""
    conv = _DEPTHWISE[ndim](channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
    conv = conv.to(dtype=like.dtype, device=like.device)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[(slice(None), 0, *(kernel_size // 2,) * ndim)] = 1.0
        conv.bias.zero_()
    return conv


class FilteredConv(nn.Sequential, LayerContainer):
    """``conv`` then its AdaFM filter. Reads the Sequential cannot answer (``weight``, ``bias``, ``stride``)
    reach the convolution, as on any converted layer, so code that reads ``layer.weight`` keeps working."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules")
            if not modules or "0" not in modules or name.startswith("__"):  # mid-construction or -copy;
                raise  # dunders never read through: copy.deepcopy would copy the convolution alone
            return getattr(modules["0"], name)

    def get_base_layer(self) -> nn.Module:
        """The original convolution."""
        return self[0]

    def plain(self) -> nn.Sequential:
        """What :func:`tunify.bake` puts here (then bakes the filter in it): a plain ``nn.Sequential``."""
        return nn.Sequential(*self)


class AdaFMFilter(TunableConv):
    """The tunable depthwise filter after ``conv``; anchoring also freezes ``conv`` (every entry reads it)."""

    def __init__(
        self, depthwise: nn.Module, p: int, conv: nn.Module, *, kernels: int, source: SourceFactory
    ) -> None:
        super().__init__(depthwise, p, kernels=kernels, source=source)
        object.__setattr__(self, "_conv", conv)  # not a child: the Sequential owns it

    def anchor(self, index: int) -> None:
        super().anchor(index)
        self._conv.requires_grad_(False)

    def entry_parameters(self, entry: int) -> list[nn.Parameter]:
        return self.source.entry_parameters(entry)

    def base_parameters(self) -> list[nn.Parameter]:
        return []  # the convolution's own parameters: not part of the filter


@register_strategy
class AdaFM(Strategy):
    """``strategy="adafm", kernel_size=1``: see the module docstring."""

    name = "adafm"
    defaults: ClassVar[dict[str, Any]] = {"kernel_size": 1}
    tensors_as_copies = False

    def validate(self) -> None:
        k = self.options["kernel_size"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
            raise ValueError(f"strategy 'adafm': kernel_size must be an odd integer >= 1, got {k!r}")

    def check(self, layer: nn.Module, name: str, p: int, kernels: int) -> None:
        super().check(layer, name, p, kernels)
        if not isinstance(layer, nn.modules.conv._ConvNd) or len(layer.kernel_size) not in _DEPTHWISE:
            raise ConversionError(
                f"strategy 'adafm' cannot convert layer {name!r} ({type(layer).__name__}): AdaFM filters the "
                "output of convolutions only; exclude it (exclude=[...], layer_types=(nn.Conv2d,)) or use "
                "another strategy"
            )

    def make_tensor(self, name: str, tensor: Tensor, kernels: int, reference: int) -> DeltaTensor:
        return FullDelta(tensor, kernels, reference, trainable_base=False)

    def build(
        self, layer: nn.Module, factory: LayerFactory, p: int, kernels: int, **kwargs: Any
    ) -> nn.Module:
        ndim = len(layer.kernel_size)
        depthwise = identity_depthwise(layer.out_channels, ndim, self.options["kernel_size"], layer.weight)
        tunable = AdaFMFilter(depthwise, p, layer, kernels=kernels, source=self.source(p))
        return FilteredConv(layer, tunable)

    def params_added(self, layer: nn.Module, tensors: dict[str, Tensor], p: int, kernels: int) -> int:
        k = self.options["kernel_size"]
        return (kernels - 1) * layer.out_channels * (k ** len(layer.kernel_size) + 1)

    def describe(self, tensors: dict[str, Tensor]) -> str:
        return f"adafm k={self.options['kernel_size']}"

    def tunable_class(self, cls: str, tensors: dict[str, Tensor]) -> str:
        return f"Sequential(conv, AdaFMFilter) (adafm k={self.options['kernel_size']})"
