"""How ω reaches the tunable layers of one call, and how it is checked.

A :class:`~tunify.TunableModel` call sets ω in a :class:`contextvars.ContextVar` for the duration of the
call, so concurrent calls in other threads or tasks never see each other's ω and nothing outlives the call.
Gradient checkpointing re-runs parts of the forward pass during ``backward()``, after the call has
returned; each layer therefore also remembers the ω of its last forward and uses it only while autograd is
executing a backward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

_OMEGA: ContextVar[Tensor | None] = ContextVar("tunify_omega", default=None)


class MissingOmegaError(RuntimeError):
    """A tunable layer ran outside a call that provides ω."""


class PerSampleRowsError(ValueError):
    """A layer input whose leading dimension does not hold the batch of a per-sample ω."""


@contextmanager
def use_omega(omega: Tensor) -> Iterator[None]:
    """Make ``omega`` ((p,) or (B, p)) visible to every tunable layer run inside the block."""
    token = _OMEGA.set(omega)
    try:
        yield
    finally:
        _OMEGA.reset(token)


def current_omega() -> Tensor | None:
    """The ω of the enclosing :func:`use_omega` block, or None."""
    return _OMEGA.get()


def in_backward() -> bool:
    """True while autograd runs a backward pass (where checkpointed forwards are recomputed)."""
    return torch._C._current_graph_task_id() != -1


def check_omega(
    omega: Tensor, p: int, batch_size: int | None = None, *, allow_extrapolation: bool = False
) -> Tensor:
    """Validate ω and return it as a floating tensor of shape (p,) or (B, p).

    Raises:
        ValueError: naming the problem: type, shape (with the expected p and batch size), NaN/inf, range.
    """
    if not isinstance(omega, Tensor):
        omega = torch.as_tensor(omega, dtype=torch.get_default_dtype())
    if not omega.is_floating_point():
        omega = omega.to(torch.get_default_dtype())
    shared_ok = omega.ndim == 1 and omega.shape[0] == p
    batched_ok = omega.ndim == 2 and omega.shape[1] == p and batch_size in (None, omega.shape[0])
    if not (shared_ok or batched_ok):
        per_sample = f"({batch_size}, {p})" if batch_size is not None else f"(B, {p})"
        raise ValueError(
            f"omega has shape {tuple(omega.shape)}; expected ({p},) shared by the batch or {per_sample} "
            f"with one row per sample"
        )
    if torch.compiler.is_compiling():
        return omega  # value checks would break the graph; they ran on the first eager call
    if not torch.isfinite(omega).all():
        raise ValueError(f"omega contains NaN or inf: {omega.tolist()}")
    if not allow_extrapolation and ((omega < 0).any() or (omega > 1).any()):
        raise ValueError(
            f"omega must lie in [0, 1], got values in [{omega.min().item():.4g}, {omega.max().item():.4g}]; "
            "convert with allow_extrapolation=True to go outside"
        )
    return omega


def check_rows(omega: Tensor, n: int, where: str) -> None:
    """Check that a layer input with ``n`` leading rows can take per-sample ω of shape (B, p).

    Window attention and similar code fold extra items into the batch dimension sample by sample
    (B·k rows, sample-major); the layers then apply each ω row to its k consecutive input rows.
    """
    if n % omega.shape[0]:
        raise PerSampleRowsError(
            f"{where}: per-sample omega has {omega.shape[0]} rows but the layer input has {n} leading rows, "
            "which is not a multiple; pass a shared omega of shape (p,) or feed the batch in the leading "
            "dimension"
        )
