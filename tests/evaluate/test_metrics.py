from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunify.evaluate import (
    LPIPS,
    PSNR_CAP_DB,
    MetricUnavailableError,
    lpips_unavailable_reason,
    noise_preservation_target,
    psnr,
    psnr_eta,
    rgb_to_y,
    ssim,
)


def _const(level: float, shape: tuple[int, ...] = (1, 3, 16, 16)) -> torch.Tensor:
    return torch.full(shape, level / 255)


def test_identical_images_are_capped_or_inf() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr(x, x).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB] == [100.0, 100.0]
    assert math.isinf(psnr(x, x, max_db=None)[0].item())
    # values within half a grey level quantise to the same uint8 image
    assert psnr(x.mul(255).round().add(0.4).div(255), x.mul(255).round().div(255))[0] == 100.0


def test_known_mse_gives_known_psnr() -> None:
    assert psnr(_const(110), _const(100)).item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    half = _const(100).clone()
    half[..., :8, :] = 110 / 255  # half the pixels off by 10 -> MSE 50
    assert psnr(half, _const(100)).item() == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-9)
    # out-of-range values are clamped first, as in an 8-bit file
    assert psnr(_const(-40), _const(0)).item() == 100.0


def test_dataset_score_is_mean_of_per_image_psnr_not_pooled() -> None:
    pred = torch.cat([_const(101), _const(110)])
    per_image = psnr(pred, torch.cat([_const(100), _const(100)]))
    assert per_image.tolist() == pytest.approx([10 * math.log10(255**2 / m) for m in (1, 100)])
    pooled = 10 * math.log10(255**2 / 50.5)
    assert abs(per_image.mean().item() - pooled) > 5


def test_y_channel_of_known_colours() -> None:
    colours = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    y = rgb_to_y(colours.mul(255).view(5, 3, 1, 1)).flatten()
    assert y.tolist() == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], abs=1e-9)


def test_y_channel_and_crop_border() -> None:
    a = _const(100, (1, 3, 20, 20))
    b = a.clone()
    b[..., :2, :] = 0  # differs only in a 2-pixel top border
    assert psnr(a, b, crop_border=2).item() == 100.0 and psnr(a, b).item() < 30
    grey_shift = _const(110, (1, 3, 20, 20))  # a grey shift of 10 levels is a luma shift of 10 * 219/255
    expected = 10 * math.log10(255**2 / (10 * 219 / 255) ** 2)
    assert psnr(grey_shift, a, y_channel=True).item() == pytest.approx(expected, abs=1e-9)


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Direct loop over 11x11 windows (no separable filters), one greyscale image in 0-255 levels."""
    d = np.arange(11) - 5
    g = np.exp(-(d**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_identical_constant_and_reference() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 24, 20, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    a, b = 100.0, 140.0  # constant images: only the luminance term is left
    expected = (2 * a * b + (0.01 * 255) ** 2) / (a**2 + b**2 + (0.01 * 255) ** 2)
    assert ssim(_const(a, (1, 3, 16, 16)), _const(b, (1, 3, 16, 16))).item() == pytest.approx(
        expected, abs=1e-12
    )
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    qx, qy = (t.mul(255).round().double().numpy() for t in (x, y))
    per_channel = [[_ssim_reference(qx[n, c], qy[n, c]) for c in range(3)] for n in range(2)]
    assert ssim(x, y).tolist() == pytest.approx(np.mean(per_channel, axis=1).tolist(), abs=1e-10)
    assert 0 < ssim(x, y)[0] < 1


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_noise_preservation_target_and_psnr_eta() -> None:
    g = torch.Generator().manual_seed(2)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    omega = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # per-sample rows
    target = noise_preservation_target(clean, noisy, omega)
    assert torch.equal(target[0], clean[0])
    assert torch.allclose(target[1], clean[1] + 0.9 * (noisy[1] - clean[1]))
    shared = noise_preservation_target(clean, noisy, torch.tensor([0.5, 0.5]))
    assert torch.allclose(shared, clean + 0.45 * (noisy - clean))
    eta = psnr_eta(target, clean, noisy, omega)
    assert eta.tolist() == [100.0, 100.0]
    assert psnr_eta(noisy, clean, noisy, omega)[0] == psnr(noisy, clean)[0]  # ω2 = 0: PSNR_η == PSNR
    with pytest.raises(ValueError, match="one shape"):
        noise_preservation_target(clean, clean[..., ::2, ::2], omega)


def test_lpips_is_offline_only() -> None:
    reason = lpips_unavailable_reason()
    if reason is None:
        pytest.skip("lpips and its backbone are available locally; the unavailable path is not exercised")
    assert "LPIPS skipped" in reason
    with pytest.raises(MetricUnavailableError, match="LPIPS skipped"):
        LPIPS()
