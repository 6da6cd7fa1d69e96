"""A tiny tunable denoiser saved as a published model would be, shared by the app tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tunify
from tunify.hub import save_pretrained

INFO = {
    "task": "denoising",
    "objectives": [
        {"name": "reconstruction", "omega_index": 0, "description": "removes the noise"},
        {"name": "noise_preservation", "omega_index": 1, "description": "keeps some noise"},
    ],
    "training": {
        "degradation": {"name": "noise", "sigma": [5.0, 30.0]},
        "objectives": [{"name": "reconstruction"}, {"name": "noise_preservation", "nu": 0.9}],
    },
}


def tiny_denoiser(seed: int = 0) -> tunify.TunableModel:
    """Three-layer DnCNN, p = 2, its two kernel copies made to differ so that ω changes the output."""
    torch.manual_seed(seed)
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3}})
    tmodel = tunify.convert(base.eval(), p=2).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in tmodel.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=g))
    tmodel.info = INFO
    return tmodel


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pretrained(tiny_denoiser(), tmp_path_factory.mktemp("app-model") / "tiny")


@pytest.fixture(scope="session")
def mix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """p = 3 on the simplex (a mix of three styles)."""
    torch.manual_seed(1)
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3}})
    tmodel = tunify.convert(base.eval(), p=3).eval()
    tmodel.info = {
        "task": "style",
        "objectives": [
            {"name": name, "omega_index": i} for i, name in enumerate(("mosaic", "candy", "udnie"))
        ],
    }
    return save_pretrained(tmodel, tmp_path_factory.mktemp("app-mix") / "mix")


@pytest.fixture(scope="session")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 picture with structure (a gradient and a square), so that outputs differ visibly."""
    yy, xx = np.mgrid[0:64, 0:64]
    arr = np.stack([xx * 4, yy * 4, np.where((abs(xx - 40) < 10) & (abs(yy - 40) < 10), 220, 40)], axis=2)
    path = tmp_path_factory.mktemp("app-image") / "in.png"
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path
