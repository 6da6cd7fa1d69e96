"""Additive white Gaussian noise with a per-sample σ (in 0-255 units), as used to train blind denoisers (DnCNN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tunify.data.degradations.base import (
    Degradation,
    Params,
    as_range,
    draw_uniform,
    randn_like,
    register_degradation,
)


def add_gaussian_noise(
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> torch.Tensor:
    """x + σ/255 · N(0, 1); `sigma` is a number or a per-sample tensor [B] in 0-255 units.

    Not clipped by default: the reference protocols (DnCNN, the paper) feed unclipped noisy images.
    """
    sigma_t = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))
    y = x + (sigma_t / 255.0) * randn_like(x, generator)
    return y.clamp(0.0, 1.0) if clip else y


@register_degradation("noise")
@dataclass
class GaussianNoise(Degradation):
    """Gaussian noise with σ fixed (`sigma=25`) or drawn uniformly per sample (`sigma=(5, 30)`), 0-255 units."""

    name = "noise"
    sigma: float | Sequence[float] = 25.0
    clip: bool = False

    def __post_init__(self) -> None:
        lo, hi = as_range(self.sigma, "sigma")
        self.sigma = lo if lo == hi else (lo, hi)

    def apply(self, clean: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        sigma = draw_uniform(as_range(self.sigma, "sigma"), clean.shape[0], generator, clean.device)  # [B]
        noisy = add_gaussian_noise(clean, sigma.to(clean.dtype), generator=generator, clip=self.clip)
        # the noise itself: after other degradations (blur), z − y is not the noise, and noise-preserving
        # targets must keep only what this step added
        return noisy, {"sigma": sigma, "noise": noisy - clean}
