"""The real pretrained CDnCNN-B on Kodak24 kodim01 at σ = 25, following its PROVENANCE.md protocol exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tunify.data import read_image
from tunify.evaluate import psnr

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
WEIGHTS = SHARED / "pretrained" / "CDnCNN-B_color_blind" / "cdncnn_b_color_blind.pth"
KODIM01 = SHARED / "datasets" / "Kodak24" / "kodim01.png"


def _cdncnn() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(18):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(64, 3, 3, padding=1))
    net = nn.Sequential(*layers)
    net.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    return net.eval()


@pytest.mark.slow
@pytest.mark.skipif(
    not (WEIGHTS.is_file() and KODIM01.is_file()), reason="../shared CDnCNN weights or Kodak24 absent"
)
def test_cdncnn_kodim01_sigma25_matches_provenance() -> None:
    clean = read_image(KODIM01)  # (3, H, W) in [0, 1]
    # PROVENANCE: noisy = x + (25/255)·N(0,1), numpy default_rng(0) over the (H, W, 3) image, float, unclipped
    x = clean.permute(1, 2, 0).double().numpy()
    noisy_np = x + (25 / 255) * np.random.default_rng(0).standard_normal(x.shape)
    noisy = torch.from_numpy(noisy_np.transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        denoised = noisy - _cdncnn()(noisy)
    assert psnr(noisy, clean[None]).item() == pytest.approx(20.27, abs=0.02)
    assert psnr(denoised, clean[None]).item() == pytest.approx(29.66, abs=0.02)
