"""Tiny converted networks and a fake Hugging Face cache for the hub and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

import tunify

SHA = "0123456789abcdef0123456789abcdef01234567"


class TinyNet(nn.Module):
    """A custom (non-zoo) network: from_pretrained needs it passed as model=."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def perturb(tmodel: tunify.TunableModel, seed: int = 0) -> tunify.TunableModel:
    """Make the p kernels differ, as after fine-tuning, so ω changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in tmodel.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=g))
    return tmodel.eval()


def tiny_custom(seed: int = 0) -> tunify.TunableModel:
    torch.manual_seed(seed)
    tmodel = perturb(tunify.convert(TinyNet(), p=2), seed)
    tmodel.info = {
        "task": "denoising",
        "objectives": [
            {"name": "fidelity", "omega_index": 0, "description": "ω1: fidelity (denoising strength)"},
            {"name": "noise", "omega_index": 1, "description": "ω2: noise preservation"},
        ],
        "metrics": {"sample σ=25": {"psnr": 30.0}},
        "license": "apache-2.0",
    }
    return tmodel


def tiny_dncnn(seed: int = 0) -> tunify.TunableModel:
    """A small spandrel DnCNN (zoo-describable, so it rebuilds without model=)."""
    torch.manual_seed(seed)
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3}})
    tmodel = perturb(tunify.convert(base.eval(), p=2), seed)
    tmodel.info = {
        "task": "denoising",
        "objectives": [{"name": "fidelity", "omega_index": 0, "description": "x"}],
    }
    return tmodel


def fake_cache(cache: Path, repo_id: str, folder: Path, files: list[str] | None = None) -> Path:
    """Lay out ``cache`` as a download leaves it: refs/main -> sha, files under snapshots/<sha>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    for name in files if files is not None else [p.name for p in folder.iterdir()]:
        shutil.copyfile(folder / name, snapshot / name)
    return snapshot
