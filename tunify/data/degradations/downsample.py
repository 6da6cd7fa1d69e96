"""MATLAB-compatible bicubic downsampling (`imresize(x, 1/k)`), the degradation behind the SR benchmarks.

torch's `interpolate(..., antialias=True)` renormalises the kernel at the border instead of mirroring the image
as MATLAB does, so the border pixels of Set5/Set14 LR images would not match; this builds MATLAB's resampling
matrices (cubic kernel a = -0.5 widened by k, symmetric border) and applies them as two matrix products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tunify.data.degradations.base import Degradation, Params, register_degradation


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def bicubic_matrix(in_len: int, scale: int, *, device: torch.device | None = None) -> torch.Tensor:
    """The (in_len // scale, in_len) float64 matrix that downsamples one axis by an integer `scale`."""
    out_len = math.ceil(in_len / scale)
    s = 1.0 / scale
    width = 4.0 / s  # the antialiasing kernel is stretched by the scale factor
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)  # MATLAB's 1-based output coords
    u = x / s + 0.5 * (1 - 1 / s)  # matching input coordinate
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None]  # [out, taps]
    wts = s * _cubic(s * (u[:, None] - idx))
    wts = wts / wts.sum(dim=1, keepdim=True)
    # symmetric border: indices 0, -1, ... map to 1, 2, ... (1-based), as MATLAB's [1:n, n:-1:1] lookup
    period = torch.remainder(idx - 1, 2 * in_len)
    idx0 = torch.where(period < in_len, period, 2 * in_len - 1 - period).long()  # 0-based
    mat = torch.zeros(out_len, in_len, dtype=torch.float64, device=device)
    return mat.scatter_add_(1, idx0, wts)


def bicubic_downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Downsample x (B, C, H, W) by an integer `scale` like MATLAB `imresize(x, 1/scale, 'bicubic')`.

    H and W must be multiples of `scale` (crop first), so that LR and HR pixels line up exactly.
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of scale {scale}; crop it first")
    if scale == 1:
        return x.clone()
    mh = bicubic_matrix(h, scale, device=x.device).to(x.dtype)  # [h/s, h]
    mw = bicubic_matrix(w, scale, device=x.device).to(x.dtype)  # [w/s, w]
    return mh @ x @ mw.T


@register_degradation("downsample")
@dataclass
class BicubicDownsample(Degradation):
    """Bicubic ×`scale` downsampling (deterministic; `params["scale"]` repeats the factor per sample)."""

    name = "downsample"
    scale: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale must be a positive integer, got {self.scale!r}")

    def apply(self, clean: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        scale = torch.full((clean.shape[0],), float(self.scale), device=clean.device)
        return bicubic_downsample(clean, self.scale), {"scale": scale}
