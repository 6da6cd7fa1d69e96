"""tunify.export: a tunable network as a file an app can run, ω live as an input or baked in.

    tunify.export(tmodel, "model.onnx")                       # ω a second input (p,): tune at run time
    tunify.export(tmodel, "model.onnx", mix="outputs")        # ω (B, p), constant-weight convolutions
    tunify.export(tmodel, "model.onnx", spatial=True, mix="outputs")  # ω (B, p, H, W), one per pixel
    tunify.export(tmodel, "plain.onnx", omega=[0.7, 0.3])     # the ordinary network at one ω
    tunify.export(tmodel, "model.pt2")                        # torch.export program (torch.export.load)

For your own tracing, ``OmegaInput(tmodel)`` is the model as ``forward(x, omega)`` and
``export_program(tmodel)`` gives the ``torch.export.ExportedProgram``.

The package is callable: ``tunify.export(...)`` is :func:`export`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import FORMATS, export
from .deps import INSTALL, MissingDependencyError
from .metadata import export_metadata
from .program import MIX_FORMS, OmegaInput, export_program

__all__ = [
    "FORMATS",
    "INSTALL",
    "MIX_FORMS",
    "MissingDependencyError",
    "OmegaInput",
    "export",
    "export_metadata",
    "export_program",
]


class _CallableModule(types.ModuleType):
    """``tunify.export`` is both this package and the function: ``tunify.export(tmodel, path)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
