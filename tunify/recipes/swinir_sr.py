"""Tunable ×4 SwinIR super-resolution: ω = (reconstruction, GAN), the perception-distortion trade-off.

    python -m tunify.recipes.swinir_sr --init 001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth --train-dir DF2K_HR
    python -m tunify.recipes.swinir_sr --preset smoke --out runs/sr-smoke

The GAN objective (L1 + VGG-19 perceptual + relativistic adversarial, ESRGAN-style) needs ImageNet VGG-19
weights through timm; ``--preset smoke`` uses a random VGG (``pretrained: false``) and says so.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch
from torch import nn

from tunify.data import PairedSRFolder
from tunify.recipes._base import Recipe, limit, load_network, multi_loss, resolve_path
from tunify.recipes._cli import main


def build_loss(cfg: dict[str, Any]) -> Any:
    """ω_0 weighs L1 fidelity, ω_1 the GAN objective (paper: x̂ sharper and more realistic as ω_1 → 1)."""
    gan = cfg["objectives"][1]
    if gan.get("pretrained") is False:
        warnings.warn(
            "GAN objective with a randomly initialised VGG-19 (pretrained: false): "
            "a pipeline check, not a perceptual loss",
            stacklevel=2,
        )
    return multi_loss(cfg)


class NearestUpsampledLR(torch.utils.data.Dataset):
    """LR inputs repeated ×scale to the HR size, so the ω sweep (which compares input and output pixel by
    pixel) accepts SR pairs; ``sweep_options`` takes every scale-th pixel back before the network."""

    def __init__(self, pairs: PairedSRFolder) -> None:
        self.pairs, self.name, self.degradation_label = pairs, pairs.name, pairs.degradation_label

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.pairs[i])
        s = self.pairs.scale
        item["input"] = item["input"].repeat_interleave(s, -2).repeat_interleave(s, -1)
        return item


def eval_data(cfg: dict[str, Any]) -> list[Any]:
    """Set5-style LR/HR pairs at the recipe's scale."""
    pairs = PairedSRFolder(resolve_path(cfg["data"]["val_dir"]), cfg["scale"])
    return [limit(NearestUpsampledLR(pairs), cfg["eval"].get("max_images"))]


def sweep_options(cfg: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """SR metrics: Y channel with a ``scale``-pixel border crop; the network sees the real LR input."""
    s = cfg["scale"]
    return {
        "y_channel": True,
        "crop_border": s,
        "target_fn": None,
        "forward": lambda x, omega: model(x[..., ::s, ::s], omega=omega),
    }


RECIPE = Recipe(
    name="swinir_sr",
    task="super-resolution",
    summary="Tunable x4 SwinIR super-resolution; ω = (reconstruction, GAN): the perception-distortion trade-off.",
    build_model=load_network,
    build_loss=build_loss,
    omega_effects=(
        ("reconstruction", "fidelity: L1 to the high-resolution image (highest PSNR, smoother)"),
        ("gan", "perception: VGG + adversarial loss (sharper, more realistic texture, lower PSNR)"),
    ),
    sweep_options=sweep_options,
    eval_data=eval_data,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
