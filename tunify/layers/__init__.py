"""Tunable layers: an operation fed by a source that turns α = φ(ω) into tensors (torch only)."""

from .attention import TunableMultiheadAttention
from .bank import CopyStack, KernelBank
from .base import LayerContainer, SourceFactory, TunableLayer
from .conv import TunableConv, TunableConvTranspose
from .generic import TunableModule
from .inventory import anchor_layers, copy_state_keys, phi_parameters
from .linear import TunableLinear
from .omega import MissingOmegaError, check_omega, current_omega, omega_form, use_omega
from .registry import (
    UnsupportedLayerError,
    factory_for,
    register_tunable,
    registered_types,
    unregister_tunable,
)
from .source import TensorSource
from .tensor import TunableTensor, make_tensor_tunable

__all__ = [
    "CopyStack",
    "KernelBank",
    "LayerContainer",
    "MissingOmegaError",
    "SourceFactory",
    "TensorSource",
    "TunableConv",
    "TunableConvTranspose",
    "TunableLayer",
    "TunableLinear",
    "TunableModule",
    "TunableMultiheadAttention",
    "TunableTensor",
    "UnsupportedLayerError",
    "anchor_layers",
    "check_omega",
    "copy_state_keys",
    "current_omega",
    "factory_for",
    "make_tensor_tunable",
    "omega_form",
    "phi_parameters",
    "register_tunable",
    "registered_types",
    "unregister_tunable",
    "use_omega",
]
