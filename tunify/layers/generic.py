"""A tunable wrapper for any module: it runs the module's own forward with mixed tensors.

Used for layers whose forward differs from their torch parent (timm's ``StdConv2d`` standardises its
weight, ``Conv2dSame`` pads dynamically) and for modules that call ``F.conv2d``/``F.linear`` on their own
parameters. A shared ω runs ``torch.func.functional_call`` once; per-sample ω runs it under
``torch.func.vmap`` over the samples, whose batching rules turn convolutions and matrix products with
per-sample weights into grouped and batched kernels. The module's forward may do anything with its
tensors, so an ω map acts through its average over the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils._pytree import TreeSpec, tree_flatten, tree_map, tree_unflatten

from .base import SourceFactory, TunableLayer
from .omega import PerSampleRowsError, check_rows, map_mean, omega_form, use_omega


class TunableModule(TunableLayer):
    """Tunable version of an arbitrary module, keeping the module's own forward.

    Args:
        base_layer: the module; ``tensor_names`` are its (possibly dotted) parameter names to make tunable.
        p: number of tunable parameters.
        tensor_names: defaults to ``("weight", "bias")``.
        kernels: length of α, p (default) or p + 1 for independent ω entries.
        source: how the tensors are produced from α (default: p full copies).
    """

    def __init__(
        self,
        base_layer: nn.Module,
        p: int,
        tensor_names: tuple[str, ...] = ("weight", "bias"),
        *,
        kernels: int | None = None,
        source: SourceFactory | None = None,
    ):
        super().__init__(base_layer, p, tensor_names, kernels=kernels, source=source)
        self._loop_samples = False  # per sample: vmap, or one sample after the other where vmap cannot run

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        omega = self.omega()
        if omega_form(omega) == "map":
            omega = map_mean(omega)
        if omega_form(omega) == "per_sample":
            where = type(self.base_layer).__name__
            if not self._loop_samples:
                try:
                    return vmap_over_samples(self.forward, omega, args, kwargs, where)
                except RuntimeError as error:
                    if not vmap_cannot_run(error):
                        raise
                    self._loop_samples = True  # e.g. spectral_norm's in-place power iteration in training
            return vmap_over_samples(self.forward, omega, args, kwargs, where, loop=True)
        tensors = self.shared_tensors(omega)
        return functional_call(self.base_layer, tensors, args, kwargs)


def vmap_cannot_run(error: RuntimeError) -> bool:
    """Whether ``error`` is vmap refusing an operation (reading ``.data``, an ``out=`` op), which a loop over
    the samples can run."""
    return "vmap" in str(error) or "Batching rule not implemented" in str(error)


def _split_samples(
    args: tuple, kwargs: dict, omega: Tensor, where: str, batch_dim: int
) -> tuple[list[Any], list[bool], TreeSpec]:
    """The call's leaves with a leading sample dimension on each tensor that holds the batch (B·k rows in
    ``batch_dim``, sample-major), which of them those are, and the spec to rebuild the call."""
    b = omega.shape[0]
    leaves, spec = tree_flatten((args, kwargs))
    tensors = [t for t in leaves if isinstance(t, Tensor) and t.ndim > batch_dim]
    if not tensors:
        raise ValueError(f"{where}: per-sample omega needs a batched tensor input")
    rows = tensors[0].shape[batch_dim]
    if rows % b:
        raise PerSampleRowsError(
            f"{where}: per-sample omega runs this call one sample at a time, splitting its tensor arguments "
            f"in dimension {batch_dim}, but the first one has {rows} there, not a multiple of the omega's {b} "
            "rows (a list of images?): give one omega for the whole call, shape (p,)"
        )
    check_rows(omega, rows, where)  # notes B·k rows folded into the batch
    split = [isinstance(t, Tensor) and t.ndim > batch_dim and t.shape[batch_dim] == rows for t in leaves]
    leaves = [
        t.movedim(batch_dim, 0).unflatten(0, (b, rows // b)) if s else t
        for t, s in zip(leaves, split, strict=True)
    ]
    return leaves, split, spec


def sample_inputs(args: tuple, kwargs: dict, omega: Tensor, i: int, where: str) -> tuple[tuple, dict]:
    """The arguments of a call with per-sample ω ((B, p), batch in dimension 0) for sample ``i`` alone."""
    leaves, split, spec = _split_samples(args, kwargs, omega, where, 0)
    return tree_unflatten([t[i] if s else t for t, s in zip(leaves, split, strict=True)], spec)


def vmap_over_samples(
    fn: Callable[..., Any],
    omega: Tensor,
    args: tuple,
    kwargs: dict,
    where: str,
    batch_dim: int = 0,
    *,
    loop: bool = False,
) -> Any:
    """Run ``fn(*args, **kwargs)`` once per sample of ω ((B, p) rows or a (B, p, *S) map) under vmap.

    Inside, every tunable layer sees that sample's ω ((p,), or a (1, p, *S) map) and takes its shared or
    per-pixel path; vmap's batching rules turn the per-sample kernels into grouped convolutions and batched
    matrix products. The main input's dimension ``batch_dim`` (of the first tensor argument) holds B·k rows,
    sample-major; tensors with the same size there are split per sample (each sample keeps its k rows in
    that dimension), all others are shared. ``loop=True`` runs the samples one after the other instead, for
    code that vmap cannot run (reading ``.data`` in forward); so does ``torch.autocast``, which does not reach
    inside vmap (its convolutions would meet bfloat16 inputs with float32 kernels).
    """
    b = omega.shape[0]
    leaves, split, spec = _split_samples(args, kwargs, omega, where, batch_dim)
    tensors = [t for t, s in zip(leaves, split, strict=True) if s]
    is_map = omega_form(omega) == "map"

    def one_sample(omega_row: Tensor, *sample_leaves: Any) -> Any:
        sample_leaves = [
            t.movedim(0, batch_dim) if s else t for t, s in zip(sample_leaves, split, strict=True)
        ]
        sample_args, sample_kwargs = tree_unflatten(list(sample_leaves), spec)
        with use_omega(omega_row.unsqueeze(0) if is_map else omega_row):
            return fn(*sample_args, **sample_kwargs)

    if loop or torch.is_autocast_enabled(tensors[0].device.type):
        outs = [
            one_sample(omega[i], *(t[i] if s else t for t, s in zip(leaves, split, strict=True)))
            for i in range(b)
        ]
        out = tree_map(lambda *ts: torch.stack(ts) if isinstance(ts[0], Tensor) else ts[0], *outs)
    else:
        in_dims = (0, *(0 if s else None for s in split))
        out = vmap(one_sample, in_dims=in_dims, randomness="different")(omega, *leaves)
    return tree_map(
        lambda t: t.movedim(0, batch_dim).flatten(batch_dim, batch_dim + 1) if isinstance(t, Tensor) else t,
        out,
    )
