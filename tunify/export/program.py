"""A converted network as a ``torch.export`` program, ω either a second input or baked in.

Exporters trace ``forward(*args)`` with positional tensors; a :class:`~tunify.TunableModel` takes ω as a
keyword. :class:`OmegaInput` is the two-input module they need: ``OmegaInput(tmodel)(x, omega)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram

from ..convert import TunableModel, bake
from ..convert.layout import evaluating
from .compat import export_friendly

MIX_FORMS = ("weights", "outputs")
#: Spatial size of the example input traced by default: large enough that no feature map of the usual
#: networks shrinks to 1 pixel (which would fix the size), and not a multiple of 2, 4 or 8, so padding to a
#: window or a U-Net level is traced in its general form.
EXAMPLE_SIZE = (67, 61)
#: Example batch: 2, since torch.export fixes any dimension whose example size is 1.
EXAMPLE_BATCH = 2


def check_mix(mix: str, spatial: bool) -> None:
    if mix not in MIX_FORMS:
        raise ValueError(f"mix must be one of {list(MIX_FORMS)}, got {mix!r}")
    if spatial and mix != "outputs":
        raise ValueError(
            "spatial=True needs mix='outputs': per-pixel ω mixes the outputs of the p kernels, not the kernels"
        )


class OmegaInput(nn.Module):
    """``forward(x, omega)``: a converted model with ω as its second positional input.

    ``mix="weights"``: ω of shape (p,), shared by the batch; every tunable layer mixes its kernels from ω
    inside the graph (the cheapest form; the runtime must accept computed convolution weights).
    ``mix="outputs"``: ω of shape (B, p), one row per sample, run as a 1×1 ω map, so each convolution
    applies its p constant kernels and mixes their outputs (layers without a pixel grid, Linear and
    attention, mix their weights from the sample's ω). ``spatial=True``: ω of shape (B, p, H, W), one ω
    per pixel of the input.

    Use it with ``torch.export.export(OmegaInput(tmodel), (x, omega), ...)`` or any tracer.
    """

    def __init__(self, tmodel: TunableModel, mix: str = "weights", spatial: bool = False) -> None:
        super().__init__()
        check_mix(mix, spatial)
        self.tmodel = tmodel
        self.mix = mix
        self.spatial = spatial

    def forward(self, x: Tensor, omega: Tensor) -> Any:
        if self.mix == "outputs" and not self.spatial:
            omega = omega[:, :, None, None]  # a 1×1 map: the layers' per-pixel path, broadcast
        return self.tmodel(x, omega=omega)


def example_input(
    tmodel: TunableModel, batch: int = EXAMPLE_BATCH, size: tuple[int, ...] | None = None
) -> Tensor:
    """A (batch, C, 67, 61) input the network runs on, or of ``size`` when given, on the network's device.

    C is the network's own ``in_channels`` or its first layer's; a network that begins by folding pixel
    blocks into channels (Real-ESRGAN ×2, 2×2 blocks) takes a quarter or a sixteenth of that layer's. A
    network that takes one size only (a timm ViT) gets the size it states (``img_size``, timm's
    ``pretrained_cfg``). The first of those the network runs on (at batch 1) is the example.

    Raises:
        ValueError: the network runs on none of them, naming the sizes tried and the network's error.
    """
    model = tmodel.base_model
    first = next(
        (m.in_channels for m in model.modules() if isinstance(getattr(m, "in_channels", None), int)),
        None,
    )
    if first is None:
        raise ValueError(
            f"cannot tell the input channels of {type(model).__name__} (no layer with in_channels): "
            "pass example=, a batch of the input the network takes"
        )
    channels = [first] + [first // f for f in (4, 16) if first % f == 0]
    sizes = [tuple(size)] if size is not None else list(dict.fromkeys([EXAMPLE_SIZE, *_stated_sizes(model)]))
    device = next(tmodel.parameters()).device  # a network on a GPU is probed there
    errors = []
    for spatial in sizes:
        for c in channels:
            error = _error_running(tmodel, torch.rand(1, c, *spatial, device=device))
            if error is None:
                return torch.rand(batch, c, *spatial, device=device)
            errors.append(error)
    first_line = (str(errors[0]).strip().splitlines() or [""])[0]
    tried = ", ".join(f"(1, {c}, {', '.join(map(str, s))})" for s in sizes for c in channels)
    raise ValueError(
        f"{type(model).__name__} runs on none of the example inputs tried ({tried}); the first failed with "
        f"{type(errors[0]).__name__}: {first_line}. Pass example=, a batch of the input the network takes "
        "(tunify export: --size H,W)"
    ) from errors[0]


def _stated_sizes(model: nn.Module) -> list[tuple[int, int]]:
    """The input sizes a network states: ``img_size`` of it or its modules (timm's patch embeddings,
    SwinIR), then timm's ``pretrained_cfg["input_size"]``."""
    stated = [getattr(m, "img_size", None) for m in model.modules()]
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)):
        stated.append(tuple(cfg["input_size"][1:]))
    sizes = []
    for size in stated:
        size = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
        if (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)
        ):
            sizes.append((int(size[0]), int(size[1])))
    return sizes


def _error_running(tmodel: TunableModel, x: Tensor) -> Exception | None:
    """What the network raises on ``x`` at a shared ω (None when it runs): a probe, so any error counts."""
    omega = torch.full((tmodel.p,), 1 / tmodel.p)
    try:
        with _remembered_omega_kept(tmodel), evaluating(tmodel), torch.no_grad():
            tmodel(x, omega=omega)
    except Exception as error:  # the network's own code decides what a wrong input raises
        return error
    return None


def example_omega(tmodel: TunableModel, x: Tensor, mix: str, spatial: bool) -> Tensor:
    """A valid ω of the input's shape for ``mix`` and ``spatial`` (its values do not matter to the trace)."""
    p = tmodel.p
    if spatial:
        return torch.full((x.shape[0], p, *x.shape[2:]), 1 / p)
    return torch.full((p,) if mix == "weights" else (x.shape[0], p), 1 / p)


def _dynamic(x: Tensor) -> dict[int, Any]:
    """Batch and every spatial dimension dynamic (fixed only where the network's code insists)."""
    return {0: Dim.AUTO, **{d: Dim.AUTO for d in range(2, x.ndim)}}


@contextmanager
def _remembered_omega_kept(tmodel: TunableModel) -> Iterator[None]:
    """Each layer's remembered ω put back afterwards.

    Tunable layers remember the ω of their last call (for gradient checkpointing); a probe's or a trace's
    (a symbolic tensor) must not outlive it.
    """
    remembered = {m: m.__dict__["_last_omega"] for m in tmodel.modules() if "_last_omega" in m.__dict__}
    try:
        yield
    finally:
        for m in tmodel.modules():
            if m in remembered:
                m._last_omega = remembered[m]
            else:
                m.__dict__.pop("_last_omega", None)


@contextmanager
def _tracing(tmodel: TunableModel) -> Iterator[None]:
    """Eval mode, the export stand-ins, and each layer's remembered ω put back after the trace."""
    with _remembered_omega_kept(tmodel), evaluating(tmodel), export_friendly(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*assigned during export.*")
        yield


def static_dims(program: ExportedProgram, dynamic: dict[str, dict[int, Any]]) -> list[str]:
    """The requested-dynamic dimensions that the trace fixed, as ``"x dim 0 = 2"``.

    ``dynamic`` names the program's inputs in order (``x``, then ``omega``), whatever their names in forward.
    """
    fixed = []
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs = program.graph_signature.user_inputs
    for (name, dims), input_name in zip(dynamic.items(), inputs, strict=True):
        node = placeholders.get(input_name)
        shape = node.meta["val"].shape if node is not None and "val" in node.meta else None
        if shape is None:
            continue
        for d in dims:
            size = shape[d]  # an int, or a SymInt whose expression may have become a number
            if isinstance(size, int) or size.node.expr.is_number:
                fixed.append(f"{name} dim {d} = {int(size)}")
    return fixed


def export_program(
    tmodel: TunableModel,
    *,
    omega: Tensor | None = None,
    mix: str = "weights",
    spatial: bool = False,
    example: Tensor | None = None,
) -> ExportedProgram:
    """``torch.export`` of ``tmodel``: inputs ``(x, omega)`` with ω live, ``(x,)`` when ``omega`` is given.

    Batch and spatial sizes are dynamic. Where the network's own code fixes one (a size computed through a
    float, a branch on a size), the program keeps it fixed and a warning names it.
    """
    if not isinstance(tmodel, TunableModel):
        raise TypeError(f"export needs a TunableModel (from tunify.convert), got {type(tmodel).__name__}")
    x = example_input(tmodel) if example is None else example
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError(f"example must be a batched tensor (B, C, ...), got {getattr(x, 'shape', x)!r}")
    x = x.to(next(tmodel.parameters()).device)
    if omega is not None:
        if spatial or mix != "weights":
            raise ValueError(
                "a baked export (omega given) has no ω input: leave mix and spatial at their defaults"
            )
        module: nn.Module = bake(tmodel, torch.as_tensor(omega, dtype=torch.get_default_dtype())).eval()
        args: tuple[Tensor, ...] = (x,)
        dynamic = {"x": _dynamic(x)}
    else:
        check_mix(mix, spatial)
        module = OmegaInput(tmodel, mix, spatial)
        w = example_omega(tmodel, x, mix, spatial).to(x.device)
        args = (x, w)
        dynamic = {"x": _dynamic(x), "omega": {} if mix == "weights" and not spatial else _dynamic(w)}
    with _tracing(tmodel):
        if omega is None and mix == "outputs":
            # one eager call first: a network that must run per-sample ω one sample at a time (a layer runs
            # once for the whole batch, or concatenates batches) finds out then, never inside the trace
            with torch.no_grad():
                module(*args)
        # by position: a baked network's own forward names its input as it likes (NAFNet: ``inp``)
        program = torch.export.export(module, args, dynamic_shapes=tuple(dynamic.values()))
    fixed = static_dims(program, dynamic)
    if fixed:
        warnings.warn(
            f"the network's code fixes {', '.join(fixed)} in the exported graph: inputs must have that size",
            stacklevel=2,
        )
    return program
