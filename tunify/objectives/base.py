"""The objective protocol shared by every loss in the parametric multi-loss.

An objective maps ``(output, batch, omega, index)`` to a **per-sample** loss of shape (B,), so the multi-loss
can weight each sample by its own ω (Maggioni et al., "Tunable Convolutions with Parametric Multi-Loss
Optimization", CVPR 2023, Eq. 5). Objectives receive the whole ω because some targets move with it (the
noise-preserving target y_η depends on ω_k).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ._registry import Registry

Batch = Mapping[str, Tensor]

OBJECTIVES: Registry[Objective] = Registry("objective")


class Objective(nn.Module):
    """Base class: subclasses implement ``forward(output, batch, omega, index) -> Tensor[B]``.

    ``omega`` is always (B, p) here (the multi-loss expands a shared one). ``index`` is the ω entry that
    weights this objective in the multi-loss; objectives whose target depends on ω read ``ω[:, k]`` with
    ``k = omega_index`` when given, else ``index``. Composite objectives may fill ``last_terms`` with
    detached sub-term means for logging.
    """

    name: str = "objective"

    def __init__(self, *, omega_index: int | None = None) -> None:
        super().__init__()
        if omega_index is not None and omega_index < 0:
            raise ValueError(f"omega_index must be >= 0, got {omega_index}")
        self.omega_index = omega_index
        self.last_terms: dict[str, Tensor] = {}

    def strength(self, omega: Tensor, index: int) -> Tensor:
        """The ω column that drives this objective's target, shape (B,)."""
        k = index if self.omega_index is None else self.omega_index
        if k >= omega.shape[1]:
            raise ValueError(f"{self.name}: omega index {k} out of range for omega with p={omega.shape[1]}")
        return omega[:, k]

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"omega_index={self.omega_index}" if self.omega_index is not None else ""


def register_objective(name: str):
    """Class decorator: register an ``Objective`` subclass under ``name`` (and set its ``name``)."""

    def add(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        return OBJECTIVES.register(name)(cls)

    return add


def build_objective(name: str, **kwargs) -> Objective:
    """Instantiate the objective registered as ``name`` with keyword arguments (e.g. from YAML)."""
    return OBJECTIVES.get(name)(**kwargs)


def objective_names() -> list[str]:
    return OBJECTIVES.names()


def batch_tensor(batch: Batch, key: str, like: Tensor) -> Tensor:
    """``batch[key]``, checked to match ``like``'s shape; raises ``ValueError`` naming the problem."""
    if key not in batch:
        raise ValueError(f"batch has no {key!r} entry (keys: {sorted(batch)})")
    value = batch[key]
    if value.shape != like.shape:
        raise ValueError(f"batch[{key!r}] has shape {tuple(value.shape)}, output has {tuple(like.shape)}")
    return value


def per_sample_l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute error per sample: (B, ...) x (B, ...) -> (B,)."""
    return (a - b).abs().flatten(1).mean(1)


def per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error per sample: (B, ...) x (B, ...) -> (B,)."""
    return (a - b).square().flatten(1).mean(1)


def per_sample_log_mse(a: Tensor, b: Tensor) -> Tensor:
    """−PSNR per sample, up to a constant: 10·log10(MSE + 1e-8) (the PSNR loss NAFNet trains with).

    Its gradient is the MSE's divided by the sample's own MSE, so a nearly clean sample (low noise, no blur)
    weighs as much as a badly degraded one, as it does in a PSNR averaged over images and levels; L1 and MSE
    let the large errors of the hard samples drown it."""
    return 10.0 * torch.log10(per_sample_mse(a, b) + 1e-8)


PIXEL_DISTANCES = {"l1": per_sample_l1, "mse": per_sample_mse, "psnr": per_sample_log_mse}
"""Per-sample distances a pixel objective can use: L1 (the paper's), MSE, or log MSE (−PSNR)."""


def pixel_distance(name: str):
    """The per-sample distance called ``name``; a ValueError lists the choices."""
    if name not in PIXEL_DISTANCES:
        raise ValueError(f"distance must be one of {sorted(PIXEL_DISTANCES)}, got {name!r}")
    return PIXEL_DISTANCES[name]


def per_sample(value: float | Tensor, like: Tensor) -> Tensor:
    """A scalar or (B,) strength as a (B, 1, 1, 1) tensor broadcastable against image batch ``like``."""
    if not isinstance(value, Tensor):  # filled on the device: a number copied from the host waits for the GPU
        return like.new_full((like.shape[0], 1, 1, 1), float(value))
    value = value.to(dtype=like.dtype, device=like.device)
    if value.dim() == 0:
        return value.expand(like.shape[0]).view(-1, 1, 1, 1)
    if value.shape != (like.shape[0],):
        raise ValueError(f"strength must be a scalar or shape ({like.shape[0]},), got {tuple(value.shape)}")
    return value.view(-1, 1, 1, 1)
