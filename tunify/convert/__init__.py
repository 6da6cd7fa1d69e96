"""Conversion of whole networks (fx analysis, selection, surgery, bake, save/load)."""

from .anchor import anchor
from .bake import bake
from .config import ConvertConfig
from .io import CheckpointError, apply_spec, conversion_spec, load, read_checkpoint, save
from .model import TunableModel
from .report import ConversionReport, ReportRow
from .surgery import ConversionError, convert, convert_with

__all__ = [
    "CheckpointError",
    "ConversionError",
    "ConversionReport",
    "ConvertConfig",
    "ReportRow",
    "TunableModel",
    "anchor",
    "apply_spec",
    "bake",
    "conversion_spec",
    "convert",
    "convert_with",
    "load",
    "read_checkpoint",
    "save",
]
