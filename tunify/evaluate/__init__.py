"""tunify.evaluate: restoration metrics and ω sweeps for any `model(x, omega=...)` (L3: uses tunify.data only)."""

from __future__ import annotations

from tunify.evaluate.metrics import (
    PSNR_CAP_DB,
    noise_preservation_target,
    psnr,
    psnr_eta,
    quantize,
    rgb_to_y,
    ssim,
)
from tunify.evaluate.perceptual import LPIPS, MetricUnavailableError, lpips_unavailable_reason
from tunify.evaluate.report import plot_psnr_vs_omega, tuning_strip, write_json, write_markdown
from tunify.evaluate.sweep import omega_grid, sweep

__all__ = [
    "LPIPS",
    "PSNR_CAP_DB",
    "MetricUnavailableError",
    "lpips_unavailable_reason",
    "noise_preservation_target",
    "omega_grid",
    "plot_psnr_vs_omega",
    "psnr",
    "psnr_eta",
    "quantize",
    "rgb_to_y",
    "ssim",
    "sweep",
    "tuning_strip",
    "write_json",
    "write_markdown",
]
