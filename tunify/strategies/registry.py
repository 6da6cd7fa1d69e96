"""The strategies ``tunify.convert(model, p, strategy=NAME, **options)`` knows, and what each must say.

A strategy decides, for every layer the conversion selected, what replaces it: the layer type's tunable
operation (:mod:`tunify.layers`) fed by the strategy's source, or a layer of its own (AdaFM). It checks every
layer and its options before anything changes, so an unsupported layer or p raises
:class:`~tunify.ConversionError` naming both, and it tells the conversion report what each layer adds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tunify.convert import ConversionError
from tunify.layers import SourceFactory, TunableLayer

from ._delta import DeltaSource, DeltaTensor, reference_entry

LayerFactory = Callable[..., TunableLayer]


def _positive_int(name: str, value: Any, strategy: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"strategy {strategy!r}: {name} must be an integer >= 1, got {value!r}")
    return value


class Strategy:
    """Base class: subclasses set ``name`` and ``defaults`` and implement :meth:`make_tensor`.

    ``options`` (validated in :meth:`validate`) are saved in the conversion spec, so they must be JSON-able.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: named plain tensors (``convert(..., parameters=...)``) keep ``kernels``' full copies
    tensors_as_copies: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"strategy {self.name!r} has no option(s) {unknown}; its options: {known}")
        self.options = {**self.defaults, **options}
        self.validate()

    def validate(self) -> None:
        """Check ``self.options`` (ValueError naming the option)."""

    def check(self, layer: nn.Module, name: str, p: int, kernels: int) -> None:
        """Raise ConversionError if this strategy cannot make ``layer`` tunable at this p."""
        if kernels == 1:
            raise ConversionError(
                f"strategy {self.name!r} cannot convert layer {name!r} with p = 1: its copies are the pretrained "
                "tensor plus a change per ω entry besides the fidelity one, and p = 1 has none; use p >= 2, "
                "independent=True, or strategy='kernels'"
            )

    def make_tensor(self, name: str, tensor: Tensor, kernels: int, reference: int) -> DeltaTensor:
        """The source of one tunable tensor."""
        raise NotImplementedError

    def describe(self, tensors: dict[str, Tensor]) -> str:
        """A few words for the conversion report (e.g. ``lowrank r=4``)."""
        return self.name

    def tunable_class(self, cls: str, tensors: dict[str, Tensor]) -> str:
        """The report's "tunable" column for a layer whose tunable class is ``cls``."""
        return f"{cls} ({self.describe(tensors)})"

    def source(self, p: int) -> SourceFactory | None:
        """The layers' source factory (None: tunify's default, p full copies)."""

        def factory(base_layer: nn.Module, tensors: dict[str, Tensor], kernels: int) -> DeltaSource:
            return DeltaSource(tensors, kernels, reference_entry(p, kernels), self.make_tensor)

        return factory

    def build(
        self, layer: nn.Module, factory: LayerFactory, p: int, kernels: int, **kwargs: Any
    ) -> nn.Module:
        """The tunable replacement of ``layer`` (``factory`` is the layer type's tunable class)."""
        return factory(layer, p, kernels=kernels, source=self.source(p), **kwargs)

    def params_added(self, layer: nn.Module, tensors: dict[str, Tensor], p: int, kernels: int) -> int:
        """Parameters the source adds for these tensors (φ not included), counted on meta tensors."""
        reference = reference_entry(p, kernels)
        total = 0
        for name, tensor in tensors.items():
            meta = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
            total += self.make_tensor(name, meta, kernels, reference).added_parameters()
        return total

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


class Kernels(Strategy):
    """The paper's tunable kernels: p full copies of every tensor (tunify's default)."""

    name = "kernels"

    def check(self, layer: nn.Module, name: str, p: int, kernels: int) -> None:
        return None

    def source(self, p: int) -> SourceFactory | None:
        return None

    def params_added(self, layer: nn.Module, tensors: dict[str, Tensor], p: int, kernels: int) -> int:
        return (kernels - 1) * sum(t.numel() for t in tensors.values())

    def describe(self, tensors: dict[str, Tensor]) -> str:
        return ""


_STRATEGIES: dict[str, type[Strategy]] = {"kernels": Kernels}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Make a :class:`Strategy` subclass available as ``convert(..., strategy=cls.name)``; a decorator."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    return tuple(_STRATEGIES)


def get_strategy(name: str, **options: Any) -> Strategy:
    """The strategy ``name`` with its options validated (ValueError naming the known strategies)."""
    if name not in _STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(_STRATEGIES)}")
    return _STRATEGIES[name](**options)


def spatial_size(tensor: Tensor) -> int:
    """k² for a 2-D kernel (the product of the dimensions after the first two); 1 for matrices."""
    return math.prod(tensor.shape[2:]) if tensor.ndim >= 3 else 1
