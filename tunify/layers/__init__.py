"""Tunable layers: p tensor copies mixed by α = φ(ω) (torch only; no other tunify rooms)."""

from .attention import TunableMultiheadAttention
from .base import TensorBank, TunableLayer
from .conv import TunableConv, TunableConvTranspose
from .generic import TunableModule
from .linear import TunableLinear
from .omega import MissingOmegaError, check_omega, current_omega, use_omega
from .registry import (
    UnsupportedLayerError,
    factory_for,
    register_tunable,
    registered_types,
    unregister_tunable,
)
from .tensor import TunableTensor, make_tensor_tunable

__all__ = [
    "MissingOmegaError",
    "TensorBank",
    "TunableConv",
    "TunableConvTranspose",
    "TunableLayer",
    "TunableLinear",
    "TunableModule",
    "TunableMultiheadAttention",
    "TunableTensor",
    "UnsupportedLayerError",
    "check_omega",
    "current_omega",
    "factory_for",
    "make_tensor_tunable",
    "register_tunable",
    "registered_types",
    "unregister_tunable",
    "use_omega",
]
