"""A tunable wrapper for any module: it runs the module's own forward with mixed tensors.

Used for layers whose forward differs from their torch parent (timm's ``StdConv2d`` standardises its
weight, ``Conv2dSame`` pads dynamically) and for modules that call ``F.conv2d``/``F.linear`` on their own
parameters. A shared ω runs ``torch.func.functional_call`` once; per-sample ω runs it under
``torch.func.vmap`` over the samples, whose batching rules turn convolutions and matrix products with
per-sample weights into grouped and batched kernels. The module's forward may do anything with its
tensors, so an ω map acts through its average over the image.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

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


def _named_arguments(fn: Callable[..., Any] | None, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by parameter name, as far as ``fn``'s signature names them."""
    target = fn.forward if isinstance(fn, nn.Module) else fn  # a module's own call takes (*args, **kwargs)
    try:
        return {**inspect.signature(target).bind_partial(*args).arguments, **kwargs}
    except (TypeError, ValueError):  # no signature, or one of *args
        return dict(kwargs)


def _mask_dims(named: dict[str, Any], b: int) -> dict[int, int | None]:
    """PyTorch's attention masks by their names: padding masks (``key_padding_mask``,
    ``src_key_padding_mask`` …) are (B, S), batch-first even in sequence-first modules; other masks
    (``attn_mask``, ``src_mask`` …) are shared when 2-D, (B·heads, L, S) sample-major when 3-D."""
    dims: dict[int, int | None] = {}
    for name, t in named.items():
        if not (isinstance(t, Tensor) and name.endswith("mask")):
            continue
        per_sample = (name.endswith("key_padding_mask") or t.ndim == 3) and t.shape[0] % b == 0
        dims[id(t)] = 0 if per_sample else None
    return dims


def _split_dims(
    fn: Callable[..., Any] | None, args: tuple, kwargs: dict, b: int, rows: int, batch_dim: int
) -> list[int | None]:
    """For each leaf of the call, the dimension that holds the batch (None: shared by every sample).

    A tensor holds it in ``batch_dim`` where its size there is the main input's ``rows``; attention masks
    follow PyTorch's conventions (:func:`_mask_dims`); in a sequence-first call (``batch_dim`` 1) another
    tensor may hold it in dimension 0.
    """
    leaves = tree_flatten((args, kwargs))[0]
    several = sum(isinstance(t, Tensor) for t in leaves) > 1  # masks come beside an input
    masks = _mask_dims(_named_arguments(fn, args, kwargs), b) if several else {}
    dims: list[int | None] = []
    for t in leaves:
        if not isinstance(t, Tensor):
            dims.append(None)
        elif id(t) in masks:
            dims.append(masks[id(t)])
        elif t.ndim > batch_dim and t.shape[batch_dim] == rows:
            dims.append(batch_dim)
        elif batch_dim and t.ndim and t.shape[0] == rows:
            dims.append(0)
        else:
            dims.append(None)
    return dims


def _split_samples(
    args: tuple, kwargs: dict, omega: Tensor, where: str, batch_dim: int, fn: Callable[..., Any] | None = None
) -> tuple[list[Any], list[int | None], TreeSpec]:
    """The call's leaves with a leading sample dimension on each tensor that holds the batch (B·k rows in
    its batch dimension, sample-major), that dimension for each leaf (None: shared), and the spec to
    rebuild the call."""
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
    dims = _split_dims(fn, args, kwargs, b, rows, batch_dim)
    leaves = [
        t if d is None else t.movedim(d, 0).unflatten(0, (b, t.shape[d] // b))
        for t, d in zip(leaves, dims, strict=True)
    ]
    return leaves, dims, spec


def _join_samples(t: Tensor, k: int, batch_dim: int) -> Tensor:
    """One output of B per-sample calls stacked in dimension 0 → the batch in its own batch dimension:
    ``batch_dim``, or dimension 0 for an output that holds each sample's k rows there and not in
    ``batch_dim`` (a sequence-first attention's weights, (B, L, S))."""
    dim = batch_dim
    if (
        batch_dim
        and t.ndim > 1
        and t.shape[1] == k
        and (t.ndim <= 1 + batch_dim or t.shape[1 + batch_dim] != k)
    ):
        dim = 0
    return t.movedim(0, dim).flatten(dim, dim + 1)


def sample_inputs(args: tuple, kwargs: dict, omega: Tensor, i: int, where: str) -> tuple[tuple, dict]:
    """The arguments of a call with per-sample ω ((B, p), batch in dimension 0) for sample ``i`` alone."""
    leaves, dims, spec = _split_samples(args, kwargs, omega, where, 0)
    return tree_unflatten([t if d is None else t[i] for t, d in zip(leaves, dims, strict=True)], spec)


_TENSOR = object()
"""Stands for a tensor among an output's leaves while the tensors go through vmap on their own."""


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
    sample-major; tensors with the same size there (or, in a sequence-first call, in dimension 0; attention
    masks as PyTorch lays them out) are split per sample (each sample keeps its rows in that dimension),
    all others are shared. ``loop=True`` runs the samples one after the other instead, for
    code that vmap cannot run (reading ``.data`` in forward); so does ``torch.autocast``, which does not reach
    inside vmap (its convolutions would meet bfloat16 inputs with float32 kernels).
    """
    b = omega.shape[0]
    leaves, dims, spec = _split_samples(args, kwargs, omega, where, batch_dim, fn)
    split = [d is not None for d in dims]
    device = next(t for t, s in zip(leaves, split, strict=True) if s).device
    k = next(t for t, s in zip(leaves, split, strict=True) if s).shape[1]
    is_map = omega_form(omega) == "map"
    returned: list[Any] = []  # the output's structure and its leaves that are not tensors (None, sizes)

    def one_sample(omega_row: Tensor, *sample_leaves: Any) -> tuple[Tensor, ...]:
        sample_leaves = [
            t if d is None else t.movedim(0, d) for t, d in zip(sample_leaves, dims, strict=True)
        ]
        sample_args, sample_kwargs = tree_unflatten(list(sample_leaves), spec)
        with use_omega(omega_row.unsqueeze(0) if is_map else omega_row):
            out_leaves, out_spec = tree_flatten(fn(*sample_args, **sample_kwargs))
        returned[:] = [out_spec, [_TENSOR if isinstance(t, Tensor) else t for t in out_leaves]]
        return tuple(t for t in out_leaves if isinstance(t, Tensor))  # vmap returns tensors only

    if loop or torch.is_autocast_enabled(device.type):
        outs = [
            one_sample(omega[i], *(t[i] if s else t for t, s in zip(leaves, split, strict=True)))
            for i in range(b)
        ]
        stacked = [torch.stack(ts) for ts in zip(*outs, strict=True)]
    else:
        in_dims = (0, *(0 if s else None for s in split))
        stacked = vmap(one_sample, in_dims=in_dims, randomness="different")(omega, *leaves)
    out_spec, others = returned
    joined = iter(_join_samples(t, k, batch_dim) for t in stacked)
    return tree_unflatten([next(joined) if t is _TENSOR else t for t in others], out_spec)
