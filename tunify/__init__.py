"""tunify: make any trained PyTorch network tunable at inference.

After "Tunable Convolutions with Parametric Multi-Loss Optimization" (Maggioni et al., CVPR 2023).
"""

import importlib
from typing import Any

from ._version import __version__
from .convert import (
    CheckpointError,
    ConversionError,
    ConversionReport,
    ConvertConfig,
    TunableModel,
    anchor,
    bake,
    convert,
    load,
    save,
)
from .hub import from_pretrained
from .layers import MissingOmegaError, UnsupportedLayerError, register_tunable, use_omega

__all__ = [
    "CheckpointError",
    "ConversionError",
    "ConversionReport",
    "ConvertConfig",
    "MissingOmegaError",
    "TunableModel",
    "UnsupportedLayerError",
    "__version__",
    "anchor",
    "bake",
    "convert",
    "from_pretrained",
    "load",
    "register_tunable",
    "save",
    "use_omega",
]

_SUBPACKAGES = {
    "data",
    "evaluate",
    "export",
    "hub",
    "inference",
    "objectives",
    "recipes",
    "strategies",
    "train",
    "zoo",
}


def __getattr__(name: str) -> Any:
    """Subpackages load on first use (``tunify.zoo`` imports spandrel, ``tunify.evaluate`` matplotlib)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tunify' has no attribute {name!r}")
