"""Which tunable class replaces which layer type.

Lookup is by **exact type**: a subclass with its own forward (timm's ``StdConv2d``, ``Conv2dSame``) is never
handled as its parent. Unregistered subclasses of registered types get :class:`TunableModule`, which keeps
their forward. Users add their own types with :func:`register_tunable`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from .attention import TunableMultiheadAttention
from .base import TunableLayer
from .conv import TunableConv, TunableConvTranspose
from .generic import TunableModule
from .linear import TunableLinear

TunableFactory = Callable[..., TunableLayer]  # factory(module, p[, kernels=...])

_TUNABLE: dict[type[nn.Module], TunableFactory] = {
    nn.Conv1d: TunableConv,
    nn.Conv2d: TunableConv,
    nn.Conv3d: TunableConv,
    nn.ConvTranspose1d: TunableConvTranspose,
    nn.ConvTranspose2d: TunableConvTranspose,
    nn.ConvTranspose3d: TunableConvTranspose,
    nn.Linear: TunableLinear,
    NonDynamicallyQuantizableLinear: TunableLinear,
    nn.MultiheadAttention: TunableMultiheadAttention,
}


class UnsupportedLayerError(TypeError):
    """A layer type that tunify does not know how to make tunable."""


def register_tunable(
    layer_type: type[nn.Module], factory: TunableFactory | None = None, *, overwrite: bool = False
) -> TunableFactory | Callable[[TunableFactory], TunableFactory]:
    """Make ``layer_type`` convertible with ``factory(module, p) -> TunableLayer``; usable as a decorator.

    For independent ω entries (``convert(..., independent=True)``) the factory is called with the keyword
    ``kernels=p + 1`` as well, which the built-in layers pass on to :class:`TunableLayer`.

    Example:
        >>> register_tunable(MyConv, lambda m, p: TunableModule(m, p, ("weight",)))
    """

    def add(f: TunableFactory) -> TunableFactory:
        if layer_type in _TUNABLE and not overwrite:
            raise ValueError(
                f"{layer_type.__name__} is already registered; pass overwrite=True to replace it"
            )
        _TUNABLE[layer_type] = f
        return f

    return add if factory is None else add(factory)


def unregister_tunable(layer_type: type[nn.Module]) -> None:
    _TUNABLE.pop(layer_type, None)


def registered_types() -> tuple[type[nn.Module], ...]:
    return tuple(_TUNABLE)


def factory_for(module: nn.Module) -> TunableFactory | None:
    """The factory for this module: its exact type's, :class:`TunableModule` for subclasses, else None."""
    exact = _TUNABLE.get(type(module))
    if exact is not None:
        return exact
    if isinstance(module, tuple(_TUNABLE)) and not isinstance(module, TunableLayer):
        return TunableModule
    return None
