"""Tiny converted networks for the export tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import torch
from torch import nn

import tunify
from tunify import zoo

P = 2
#: Five ω on the simplex, from one end to the other.
OMEGAS = [(1.0, 0.0), (0.8, 0.2), (0.5, 0.5), (0.3, 0.7), (0.0, 1.0)]
#: Two input sizes: batch 1 and a multiple of nothing, batch 2 (no window or U-Net multiple).
SIZES = [(1, 16, 16), (2, 21, 27)]
ATOL = 1e-4


def perturb(tmodel: tunify.TunableModel, seed: int = 0) -> tunify.TunableModel:
    """Make the p copies of every tensor differ, as after fine-tuning, so that ω changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in tmodel.named_parameters():
            if "phi" not in name:
                param.add_(0.05 * param.abs().mean().clamp_min(1e-3) * torch.randn(param.shape, generator=g))
    return tmodel.eval()


def base_network(name: str) -> nn.Module:
    """The smallest configurations of the four families the issue names, freshly initialised."""
    torch.manual_seed(0)
    if name == "dncnn":
        return zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3}})
    if name == "nafnet":
        return zoo.create("nafnet_sidd_w32", width=8, enc_blk_nums=[1], middle_blk_num=1, dec_blk_nums=[1])
    if name == "swinir":
        return zoo.create(
            "swinir_color_dn",
            depths=[1],
            embed_dim=8,
            num_heads=[2],
            img_size=8,
            window_size=4,
            mlp_ratio=1.0,
        )
    if name == "timm":
        return zoo.create("timm:test_resnet", num_classes=5)
    raise ValueError(name)


def tiny(name: str, **convert_kwargs: object) -> tunify.TunableModel:
    model = base_network(name).eval()
    targets = zoo.default_tunable_targets(model)
    tmodel = perturb(tunify.convert(model, p=P, **targets, **convert_kwargs))
    tmodel.info = {
        "task": "denoising",
        "objectives": [
            {"name": "reconstruction", "omega_index": 0, "description": "removes the noise"},
            {"name": "noise_preservation", "omega_index": 1, "description": "keeps the grain"},
        ],
    }
    return tmodel


def inputs(size: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    b, h, w = size
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))
