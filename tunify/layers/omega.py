"""How ω reaches the tunable layers of one call, what forms it takes, and how it is checked.

A :class:`~tunify.TunableModel` call sets ω in a :class:`contextvars.ContextVar` for the duration of the
call, so concurrent calls in other threads or tasks never see each other's ω and nothing outlives the call.
Under ``torch.compile``, which cannot trace a context variable, ω rides a plain list instead (:data:`_TRACED`).
Gradient checkpointing re-runs parts of the forward pass during ``backward()``, after the call has
returned: there layers take the ω of the call being recomputed from :mod:`tunify.layers.recompute`.

ω takes three forms, and every layer asks :func:`omega_form` which one it has:

- **shared**: (p,) or (1, p), one ω for the whole batch;
- **per sample**: (B, p), one row per sample;
- **map**: (B, p, *S), one ω per pixel of a grid S (the model input's, or 1×1 to broadcast). Layers
  resample the map to their own output grid with :func:`map_on_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

_OMEGA: ContextVar[Tensor | None] = ContextVar("tunify_omega", default=None)
_GRID: ContextVar[list[tuple[int, ...]] | None] = ContextVar("tunify_grid", default=None)
_FOLDED: ContextVar[list[int] | None] = ContextVar("tunify_folded", default=None)
_VALUES: ContextVar[dict[int, tuple[Tensor, tuple]] | None] = ContextVar("tunify_values", default=None)
_EPOCH: ContextVar[Any] = ContextVar("tunify_cache_epoch", default=None)
_ALPHAS: ContextVar[Any] = ContextVar("tunify_alphas", default=None)

_TRACED: list[tuple[Tensor, list[tuple[int, ...]], list[int]]] = []
"""The (ω, grids, folded rows) of the calls ``torch.compile`` runs. Dynamo cannot trace ``ContextVar.set``:
it gave up on the whole call and compiled every layer as a graph of its own (recompiled per shape, up to
failing in inductor). A plain list it traces, and a traced graph takes ω as an input. Where dynamo breaks
the network into several graphs the list holds ω between them, so two threads running the same compiled
network with graph breaks could see each other's ω (eager calls never use it)."""

OmegaForm = Literal["shared", "per_sample", "map"]


class MissingOmegaError(RuntimeError):
    """A tunable layer ran outside a call that provides ω."""


class PerSampleRowsError(ValueError):
    """A layer input whose leading dimension does not hold the batch of a per-sample ω."""


@contextmanager
def use_omega(omega: Tensor, *, epoch: Any = None, alphas: Any = None) -> Iterator[None]:
    """Make ``omega`` ((p,), (B, p) or a map (B, p, *S)) visible to every tunable layer run inside the block.

    A converted network also passes what it prepared for the call's layers: ``epoch``, the
    :class:`~tunify.layers.epoch.CacheEpoch` of its inference cache, and ``alphas``, an
    :class:`~tunify.layers.alphas.AlphaTable` (a nested block without them hides them, so layers inside
    check their caches and map ω themselves).
    """
    if torch.compiler.is_compiling():
        enter_traced(omega)
        try:
            yield
        finally:
            exit_traced()
        return
    token = _OMEGA.set(omega)
    grid_token = _GRID.set([])
    folded_token = _FOLDED.set([])
    values_token = _VALUES.set({})
    epoch_token = _EPOCH.set(epoch)
    alphas_token = _ALPHAS.set(alphas)
    try:
        yield
    finally:
        _ALPHAS.reset(alphas_token)
        _EPOCH.reset(epoch_token)
        _VALUES.reset(values_token)
        _FOLDED.reset(folded_token)
        _GRID.reset(grid_token)
        _OMEGA.reset(token)


def enter_traced(omega: Tensor) -> None:
    """:func:`use_omega` for code ``torch.compile`` traces without a ``with`` block: dynamo cannot resume
    after a graph break inside a ``with`` or ``try`` block, so a network that breaks one (NAFNet's LayerNorm
    Function) would make it give up on the whole call. Pair with :func:`exit_traced`."""
    _TRACED.append((omega, [], []))


def exit_traced() -> None:
    _TRACED.pop()


def current_omega() -> Tensor | None:
    """The ω of the enclosing :func:`use_omega` block, or None."""
    return _call_state(_OMEGA, 0)


def _grids() -> list[tuple[int, ...]] | None:
    return _call_state(_GRID, 1)


def _folded() -> list[int] | None:
    return _call_state(_FOLDED, 2)


def values_read_in_call() -> dict[int, tuple[Tensor, tuple]] | None:
    """The ω values read during the current :func:`use_omega` block, by tensor id (None outside one): a
    tensor without a version counter is read once per call, not once per layer (on a GPU each read waits
    for the device)."""
    return _VALUES.get()


current_epoch: Callable[[], Any] = _EPOCH.get
"""The cache epoch of the enclosing :func:`use_omega` block, or None (see :mod:`tunify.layers.epoch`): the
variable's own getter, since every layer of a cached call asks it."""


def current_alphas() -> Any:
    """The α table of the enclosing :func:`use_omega` block, or None (see :mod:`tunify.layers.alphas`)."""
    return _ALPHAS.get()


def _call_state(var: ContextVar, index: int) -> Any:
    """The current call's entry: traced by torch.compile, or run eagerly inside a compiled call (the parts
    of a network dynamo could not trace), from :data:`_TRACED`; otherwise from the context variable."""
    if _TRACED and torch.compiler.is_compiling():
        return _TRACED[-1][index]
    value = var.get()
    return _TRACED[-1][index] if value is None and _TRACED else value


def omega_form(omega: Tensor) -> OmegaForm:
    """The one answer to "how does ω vary in this call?" that every layer uses."""
    if omega.ndim >= 3:
        return "map"
    if omega.ndim == 1 or omega.shape[0] == 1:
        return "shared"
    return "per_sample"


def shared_row(omega: Tensor) -> Tensor:
    """A shared ω ((p,) or (1, p)) as (p,) (the same tensor when it is one already)."""
    return omega if omega.ndim == 1 else omega.reshape(-1)


def map_mean(omega: Tensor) -> Tensor:
    """A map's average over its grid, (B, p): what layers that see no pixel grid use (attention, Linear layers
    on other tokens)."""
    return omega.flatten(2).mean(-1)


def flatten_constant_map(omega: Tensor) -> Tensor:
    """A map with the same ω at every pixel as the ω it amounts to: (B, p) per sample, or (p,) for one map;
    any other ω unchanged. Exact, and cheaper (a convolution mixes its kernels once instead of running one
    per kernel), and it lets code that reads a layer's weight directly (spandrel's SPAN) see that ω. A map
    that requires grad stays a map, so that every pixel gets its gradient."""
    if omega.ndim < 3 or omega.requires_grad or torch.compiler.is_compiling():
        return omega
    grid = omega.flatten(2)
    if not torch.equal(grid.amin(-1), grid.amax(-1)):
        return omega
    rows = grid[..., 0]
    return rows[0] if rows.shape[0] == 1 else rows


def note_grid(size: Sequence[int]) -> None:
    """Record the output grid of the last spatially mixed layer (tensors mixed per pixel follow it)."""
    grids = _grids()
    if grids is not None:
        grids.append(tuple(size))


def last_grid() -> tuple[int, ...] | None:
    grids = _grids()
    return grids[-1] if grids else None


def recent_grids() -> list[tuple[int, ...]]:
    """The output grids of this call's spatially mixed layers so far, the most recent first, a run of equal
    grids once (compared, not hashed: traced sizes are symbolic)."""
    grids: list[tuple[int, ...]] = []
    for grid in reversed(_grids() or []):
        if not grids or grid != grids[-1]:
            grids.append(grid)
    return grids


def token_grid(x: Tensor, omega: Tensor) -> tuple[int, ...] | None:
    """The pixel grid whose tokens a Linear layer's input (B, *T, C) holds, so an ω map can drive it per
    token: T is the output grid of a convolution of this call (the most recent that fits) — channels-last
    features (ConvNeXt's MLP) — or its pixels flattened in raster order (SwinIR's and Uformer's (B, H·W, C)
    tokens; a Conv1d front-end's time steps). None when the rows are not one per image (windows or patches
    folded into the batch) or T is no such grid (a class token, heads, a sequence of other length): such
    layers take the map's average."""
    for grid in recent_grids():  # pooled features (a 1×1 grid) may have come last
        if holds_tokens(x, omega, grid):
            return grid
    return None


def holds_tokens(x: Tensor, omega: Tensor, grid: tuple[int, ...]) -> bool:
    """Whether ``x`` (B, *T, C) holds one image of ``grid`` per ω row, channels-last or flattened in raster
    order."""
    tokens = tuple(x.shape[1:-1])
    if x.shape[0] != omega.shape[0] or not tokens or len(grid) != omega.ndim - 2:
        return False
    return tokens == tuple(grid) or tokens == (math.prod(grid),)


def map_on_grid(omega: Tensor, size: Sequence[int]) -> Tensor:
    """The map (B, p, *S) resampled to a layer's output grid ``size``.

    Area averaging where the layer downsamples (each output pixel gets the mean ω of the input pixels it
    covers), nearest neighbour where it upsamples, unchanged at the same size; a 1×1 map broadcasts.
    """
    grid = tuple(omega.shape[2:])
    size = tuple(size)
    if grid == size or all(s == 1 for s in grid):
        return omega
    if len(size) != len(grid):
        raise ValueError(
            f"an omega map over a {len(grid)}-D grid cannot drive a layer with a {len(size)}-D output"
        )
    if all(s <= g for s, g in zip(size, grid, strict=True)):
        if torch.compiler.is_exporting():  # exported adaptive pooling keeps the trace's sizes: use products
            for dim, (g, s) in enumerate(zip(grid, size, strict=True)):
                weights = _area_weights(g, s, omega)
                omega = (omega.movedim(2 + dim, -1) @ weights.T).movedim(-1, 2 + dim)
            return omega
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
        return pool(omega, size)
    # nearest: pixel i reads pixel ⌊i·grid/size⌋, computed in integers (a float scale, as ONNX's Resize
    # uses, lands one pixel off at some sizes)
    for dim, (g, s) in enumerate(zip(grid, size, strict=True)):
        omega = omega.index_select(2 + dim, (torch.arange(s, device=omega.device) * g) // s)
    return omega


def _area_weights(grid: int, size: int, like: Tensor) -> Tensor:
    """(size, grid): row i averages the pixels [⌊i·grid/size⌋, ⌈(i+1)·grid/size⌉), as adaptive average
    pooling does along one dimension (the pooling is separable, so one product per dimension)."""
    out = torch.arange(size, device=like.device)
    start = (out * grid) // size
    end = ((out + 1) * grid + size - 1) // size
    pixels = torch.arange(grid, device=like.device)
    inside = (pixels >= start[:, None]) & (pixels < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def in_backward() -> bool:
    """True while autograd runs a backward pass (where checkpointed forwards are recomputed)."""
    return torch._C._current_graph_task_id() != -1


def check_omega(
    omega: Tensor,
    p: int,
    batch_size: int | None = None,
    *,
    allow_extrapolation: bool = False,
    grid: Sequence[int] | None = None,
) -> Tensor:
    """Validate ω and return it as a floating tensor of shape (p,), (B, p) or a map (B, p, *S).

    A map may be given without its batch dimension, (p, *S); it comes back as (1, p, *S). ``grid`` is the
    model input's spatial size, which a map must match (or be 1×1 everywhere, to broadcast).

    Raises:
        ValueError: naming the problem: type, shape (with the expected p and batch size), NaN/inf, range.
    """
    if not isinstance(omega, Tensor):
        try:
            omega = torch.as_tensor(omega, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"omega must be a tensor or a sequence of numbers, got {type(omega).__name__} {omega!r:.60}"
            ) from None
    if not omega.is_floating_point():
        omega = omega.to(torch.get_default_dtype())
    if omega.ndim >= 3 and (omega.ndim == 1 + len(grid) if grid is not None else omega.shape[1] != p):
        omega = omega.unsqueeze(0)  # (p, *S) -> (1, p, *S)
    rows = f"({batch_size}, {p})" if batch_size is not None else f"(B, {p})"
    expected = (
        f"expected ({p},) shared by the batch, {rows} with one row per sample, or a map "
        f"({'B' if batch_size is None else batch_size}, {p}, H, W) with one ω per pixel"
    )
    if (
        omega.ndim == 0
        or (omega.ndim == 1 and omega.shape[0] != p)
        or (omega.ndim >= 2 and omega.shape[1] != p)
    ):
        raise ValueError(f"omega has shape {tuple(omega.shape)}; {expected}")
    if omega.ndim == 2 and batch_size not in (None, omega.shape[0]):
        raise ValueError(f"omega has shape {tuple(omega.shape)}; {expected}")
    if omega.ndim >= 3:
        if batch_size not in (None, 1, omega.shape[0]) and omega.shape[0] != 1:
            raise ValueError(f"omega map has {omega.shape[0]} samples but the batch has {batch_size}")
        spatial = tuple(omega.shape[2:])
        if grid is not None and spatial != tuple(grid) and any(s != 1 for s in spatial):
            raise ValueError(
                f"omega map has spatial size {spatial}, the input has {tuple(grid)}: give a map of the "
                "input's size (or 1×1 to broadcast)"
            )
    if torch.compiler.is_compiling() or omega.device.type == "meta":
        return omega  # value checks would break the graph (they ran on the first eager call); meta has none
    if not omega.numel():
        return omega
    low, high = torch.stack(omega.aminmax()).tolist()  # one reduction, one read: NaN makes both NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("omega contains NaN or inf" + (f": {omega.tolist()}" if omega.ndim <= 2 else ""))
    if not allow_extrapolation and (low < 0 or high > 1):
        raise ValueError(
            f"omega must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
            "convert with allow_extrapolation=True to go outside"
        )
    return omega


def rows_were_folded() -> bool:
    """Whether a layer of the current call took per-sample ω on more rows than samples (see
    :func:`check_rows`)."""
    return bool(_folded())


def check_rows(omega: Tensor, n: int, where: str) -> None:
    """Check that a layer input with ``n`` leading rows can take per-sample ω of shape (B, p).

    Window attention and similar code fold extra items into the batch dimension sample by sample
    (B·k rows, sample-major); the layers then apply each ω row to its k consecutive input rows.
    """
    folded = _folded()
    if folded is not None and n != omega.shape[0]:
        folded.append(n)
    if n % omega.shape[0]:
        raise PerSampleRowsError(
            f"{where}: per-sample omega has {omega.shape[0]} rows but the layer input has {n} leading rows, "
            "which is not a multiple; pass a shared omega of shape (p,) or feed the batch in the leading "
            "dimension"
        )
