"""Isotropic Gaussian blur with a per-sample std ρ and a 21×21 kernel, the deblurring setting of the paper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tunify.data.degradations.base import Degradation, Params, as_range, draw_uniform, register_degradation

_PAD_MODES = ("reflect", "replicate", "circular", "zeros")


def gaussian_kernel1d(rho: torch.Tensor, size: int = 21) -> torch.Tensor:
    """Normalised 1-D Gaussian taps [B, size] for stds `rho` [B]; ρ = 0 gives a delta (identity)."""
    if size % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {size}")
    d = torch.arange(size, dtype=torch.float64, device=rho.device) - size // 2  # [size]
    r = rho.to(torch.float64).clamp_min(1e-6)[:, None]  # tiny ρ underflows every tap but the centre: a delta
    k = torch.exp(-(d[None] ** 2) / (2 * r**2))
    return k / k.sum(dim=1, keepdim=True)


def gaussian_kernel2d(rho: float | torch.Tensor, size: int = 21) -> torch.Tensor:
    """The 2-D kernels [B, size, size] (outer product of the 1-D taps); each sums to 1."""
    k1 = gaussian_kernel1d(torch.as_tensor(rho, dtype=torch.float64).reshape(-1), size)
    return k1[:, :, None] * k1[:, None, :]


def gaussian_blur(
    x: torch.Tensor, rho: float | torch.Tensor, *, size: int = 21, padding: str = "reflect"
) -> torch.Tensor:
    """Blur each sample of x (B, C, H, W) with its own ρ (number or [B]); separable, so it costs 2·size taps.

    `padding` is how the border is extended: "reflect" (default), "replicate", "circular" or "zeros".
    """
    if padding not in _PAD_MODES:
        raise ValueError(f"padding must be one of {_PAD_MODES}, got {padding!r}")
    b, c, h, w = x.shape
    rho_t = torch.as_tensor(rho, device=x.device).reshape(-1).expand(b)
    taps = gaussian_kernel1d(rho_t, size).to(x.dtype)  # [B, size]
    taps = taps.repeat_interleave(c, dim=0)  # [B*C, size], one filter per (sample, channel)
    r = size // 2
    if padding == "reflect" and min(h, w) <= r:
        raise ValueError(
            f"reflect padding needs images larger than {r}px, got {h}x{w}; use padding='replicate'"
        )
    xp = x.reshape(1, b * c, h, w)
    xp = F.pad(xp, (r, r, r, r), mode="constant" if padding == "zeros" else padding)
    xp = F.conv2d(xp, taps[:, None, :, None], groups=b * c)  # vertical
    xp = F.conv2d(xp, taps[:, None, None, :], groups=b * c)  # horizontal
    return xp.reshape(b, c, h, w)


@register_degradation("blur")
@dataclass
class GaussianBlur(Degradation):
    """Gaussian blur with ρ fixed (`rho=2`) or drawn uniformly per sample (`rho=(0, 4)`); ρ = 0 is the identity.

    `sharp_prob` leaves that fraction of the samples unblurred (ρ = 0): a uniform ρ almost never draws a sharp
    image, and a restorer trained without them learns to sharpen images that are already sharp.
    """

    name = "blur"
    rho: float | Sequence[float] = 2.0
    kernel_size: int = 21
    padding: str = "reflect"
    sharp_prob: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = as_range(self.rho, "rho")
        self.rho = lo if lo == hi else (lo, hi)
        if self.kernel_size < 1 or self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be a positive odd integer, got {self.kernel_size}")
        if self.padding not in _PAD_MODES:
            raise ValueError(f"padding must be one of {_PAD_MODES}, got {self.padding!r}")
        if not 0.0 <= self.sharp_prob <= 1.0:
            raise ValueError(f"sharp_prob must be in [0, 1], got {self.sharp_prob}")

    def apply(self, clean: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        rho = draw_uniform(as_range(self.rho, "rho"), clean.shape[0], generator, clean.device)  # [B]
        if self.sharp_prob:
            sharp = draw_uniform((0.0, 1.0), clean.shape[0], generator, clean.device) < self.sharp_prob
            rho = rho.masked_fill(sharp, 0.0)
        return gaussian_blur(clean, rho, size=self.kernel_size, padding=self.padding), {"rho": rho}
