"""tunify: make any trained PyTorch network tunable at inference.

After "Tunable Convolutions with Parametric Multi-Loss Optimization" (Maggioni et al., CVPR 2023).
"""

from ._version import __version__
from .convert import (
    CheckpointError,
    ConversionError,
    ConversionReport,
    ConvertConfig,
    TunableModel,
    bake,
    convert,
    load,
    save,
)
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
    "bake",
    "convert",
    "load",
    "register_tunable",
    "save",
    "use_omega",
]
