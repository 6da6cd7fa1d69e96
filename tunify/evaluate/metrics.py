"""PSNR, SSIM and PSNR_η as restoration papers compute them: on 8-bit-quantised images, one score per image.

Conventions (those of the SR/denoising literature and BasicSR): images are clamped to [0, 1] and rounded to
uint8 levels first; "Y channel" is ITU-R BT.601 luma with the 16-235 range (MATLAB `rgb2ycbcr`), kept in float;
`crop_border` shaves that many pixels off every side (the SR scale). Scores are per image (shape [B]); a dataset
score is the mean of per-image scores, never the PSNR of pooled MSE.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

TargetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; capping keeps means and JSON finite

_BT601_Y = (65.481, 128.553, 24.966)  # RGB in [0, 1] -> Y in [16, 235] (8-bit units), with the +16 offset


def quantize(img: torch.Tensor) -> torch.Tensor:
    """[0, 1] float image -> float64 uint8 levels in [0, 255] (clamped, rounded): what an 8-bit file holds."""
    return img.detach().to(torch.float64).clamp(0.0, 1.0).mul(255.0).round()


def rgb_to_y(img255: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an RGB image in 8-bit units (..., 3, H, W) -> (..., 1, H, W) in [16, 235]."""
    if img255.shape[-3] != 3:
        raise ValueError(f"rgb_to_y expects 3 channels, got shape {tuple(img255.shape)}")
    w = torch.tensor(_BT601_Y, dtype=img255.dtype, device=img255.device).view(3, 1, 1) / 255.0
    return (img255 * w).sum(dim=-3, keepdim=True) + 16.0


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, y_channel: bool, crop_border: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch, quantise, optionally convert to Y and shave borders; returns float64 [B, C, H, W] in 0-255."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W) images, got shape {tuple(pred.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    a, b = quantize(pred), quantize(target.to(pred.device))
    if a.ndim == 3:
        a, b = a[None], b[None]
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    return a, b


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    max_db: float | None = PSNR_CAP_DB,
) -> torch.Tensor:
    """Per-image PSNR in dB [B] on 8-bit levels (peak 255); identical images give `max_db` (None: inf)."""
    a, b = _prepare(pred, target, y_channel, crop_border)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(255.0**2 / mse)  # mse = 0 -> inf
    return out if max_db is None else out.clamp(max=max_db)


def _gaussian_window(
    size: int = 11, std: float = 1.5, *, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    d = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-(d**2) / (2 * std**2))
    return g / g.sum()


def ssim(
    pred: torch.Tensor, target: torch.Tensor, *, y_channel: bool = False, crop_border: int = 0
) -> torch.Tensor:
    """Per-image SSIM [B] (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255.

    Computed per channel over the 'valid' window positions (no padding, no downsampling) and averaged over
    channels, as in the SR-paper convention (BasicSR's `calculate_ssim`).
    """
    a, b = _prepare(pred, target, y_channel, crop_border)
    c, h, w = a.shape[1:]
    if min(h, w) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels after cropping, got {h}x{w}")
    g = _gaussian_window(dtype=a.dtype, device=a.device)
    kv, kh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1), g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kv, groups=c), kh, groups=c)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def noise_preservation_target(
    clean: torch.Tensor, degraded: torch.Tensor, omega: torch.Tensor, *, nu: float = 0.9, index: int = 1
) -> torch.Tensor:
    """The paper's ω-dependent denoising target y_η = y + ω[index]·ν·(z − y) (y clean, z noisy, ν = 0.9).

    With the paper's ω = (ω1, ω2 = 1 − ω1), ω2 weights the noise-preservation objective, hence `index=1`.
    """
    if degraded.shape != clean.shape:
        raise ValueError(
            f"noise-preservation target needs degraded and clean of one shape, got "
            f"{tuple(degraded.shape)} vs {tuple(clean.shape)}"
        )
    if omega.shape[-1] <= index:
        raise ValueError(f"omega has {omega.shape[-1]} entries; the target reads omega[..., {index}]")
    w = omega[..., index].to(clean.dtype).to(clean.device)
    if w.ndim == 1 and clean.ndim == 4:
        w = w.view(-1, 1, 1, 1)  # per-sample ω rows
    return clean + w * nu * (degraded - clean)


def psnr_eta(
    pred: torch.Tensor,
    clean: torch.Tensor,
    degraded: torch.Tensor,
    omega: torch.Tensor,
    *,
    target_fn: TargetFn = noise_preservation_target,
    y_channel: bool = False,
    crop_border: int = 0,
    max_db: float | None = PSNR_CAP_DB,
) -> torch.Tensor:
    """Per-image PSNR [B] against the ω-dependent target `target_fn(clean, degraded, omega)`.

    The target is quantised like any image (clamped to [0, 1], rounded), so it is what an 8-bit file would hold.
    """
    target = target_fn(clean, degraded, omega)
    return psnr(pred, target, y_channel=y_channel, crop_border=crop_border, max_db=max_db)
