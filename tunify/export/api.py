"""``tunify.export(tmodel, path, ...)``: one call from a converted network to a file an app can run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import Tensor

from .._atomic import atomic_write
from ..convert import TunableModel
from .metadata import describe, export_metadata
from .onnx import write_onnx
from .program import check_mix, export_program

#: File suffixes and what they get.
FORMATS = {".onnx": "ONNX", ".pt2": "torch.export program"}


def export(
    tmodel: TunableModel,
    path: str | Path,
    *,
    omega: Tensor | list[float] | None = None,
    mix: str = "weights",
    spatial: bool = False,
    opset: int | None = None,
    example: Tensor | None = None,
) -> Path:
    """Write ``tmodel`` to ``path``: ONNX for ``.onnx``, a ``torch.export`` program for ``.pt2``.

    Args:
        omega: fix ω (shape (p,)) and export the baked, ordinary network (input ``x`` only; any runtime).
            None (default): ω is the graph's second input ``omega``, so an app exports once and tunes at
            run time.
        mix: with ω live, ``"weights"``: ω of shape (p,) shared by the batch, the kernels mixed inside the
            graph (cheapest; the runtime must accept computed convolution weights, as ONNX Runtime does).
            ``"outputs"``: ω of shape (B, p), each convolution runs its p kernels as constant-weight
            convolutions and mixes their outputs (per sample; the form per-pixel ω needs; Linear and
            attention layers mix their weights from the sample's ω).
        spatial: ω of shape (B, p, H, W), one ω per pixel of the input (needs ``mix="outputs"``).
        opset: ONNX opset (default: the exporter's).
        example: an input batch to trace with (default: (2, C, 67, 61) random, C from the first layer).

    Batch and spatial sizes stay dynamic. The ONNX file's ``metadata_props`` carry p, what each ω_i does
    and the ω semantics (see :mod:`tunify.export.metadata`); a ``.pt2`` file carries the same as
    ``extra/tunify.json``.

    Raises:
        ValueError: an unknown suffix or ``mix``, ``spatial`` without ``mix="outputs"``, a bad ω.
        tunify.export.MissingDependencyError: ``onnx``/``onnxscript`` missing (``pip install 'tunify[export]'``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot tell the format of {str(path)!r}: use a {' or '.join(FORMATS)} suffix "
            f"({', '.join(f'{s} = {f}' for s, f in FORMATS.items())})"
        )
    baked = None
    if omega is not None:
        baked = torch.as_tensor(omega, dtype=torch.get_default_dtype()).reshape(-1)
    else:
        check_mix(mix, spatial)
    if suffix == ".onnx":  # fail on a missing package before a long trace
        from .deps import require

        require("onnx", "onnxscript")
    program = export_program(tmodel, omega=baked, mix=mix, spatial=spatial, example=example)
    metadata = export_metadata(tmodel, baked=baked, mix=mix, spatial=spatial)
    if suffix == ".onnx":
        inputs = ["x"] if baked is not None else ["x", "omega"]
        return write_onnx(
            program, path, input_names=inputs, metadata=metadata, doc=describe(metadata), opset=opset
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"tunify.json": json.dumps(metadata, ensure_ascii=False, indent=2)}
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name; the atomic write's temporary file has none
    torch.export.save(program, buffer, extra_files=extra)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    return path
