"""An exported program written as an ONNX file with ω's description in its ``metadata_props``."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch.export import ExportedProgram

from .._atomic import atomic_write
from .deps import require

#: Names of the dynamic dimensions of the input image, by axis (the exporter calls them s0, s1, ...).
AXIS_NAMES = {0: "batch", 2: "height", 3: "width", 4: "depth"}


def _rename_dims(model: object, names: dict[str, str]) -> None:
    """Give the graph inputs' and outputs' symbolic dimensions readable names (``s53`` → ``height``)."""
    import onnx_ir as ir

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None

    def rename(dim: object) -> object:
        if pattern is None or not isinstance(dim, ir.SymbolicDim) or dim.value is None:
            return dim
        return ir.SymbolicDim(pattern.sub(lambda m: names[m.group(1)], dim.value))

    for value in (*model.graph.inputs, *model.graph.outputs):
        if value.shape is not None:
            value.shape = ir.Shape([rename(d) for d in value.shape])


def write_onnx(
    program: ExportedProgram,
    path: str | Path,
    *,
    input_names: list[str],
    metadata: dict[str, str],
    doc: str,
    opset: int | None = None,
) -> Path:
    """Translate ``program`` to ONNX (opset ``opset``, else the exporter's default) and write it to ``path``."""
    require("onnx", "onnxscript")
    import onnx_ir as ir

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress notes and deprecations are not the user's
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            input_names=input_names,
            output_names=["output"],
            opset_version=opset,
            verbose=False,
        )
    model = onnx_program.model
    first = model.graph.inputs[0]
    names = {
        d.value: AXIS_NAMES[axis]
        for axis, d in enumerate(first.shape or ())
        if isinstance(d, ir.SymbolicDim) and d.value and axis in AXIS_NAMES
    }
    _rename_dims(model, names)
    model.metadata_props.update(metadata)
    model.doc_string = doc
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: onnx_program.save(tmp))
    return path
