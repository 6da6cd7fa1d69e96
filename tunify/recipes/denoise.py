"""Tunable denoising of any convolutional denoiser: ω = (reconstruction, noise preservation).

    python -m tunify.recipes.denoise --init ../shared/pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth
    python -m tunify.recipes.denoise --preset smoke --out runs/dn-smoke

``--init`` takes any checkpoint ``tunify.zoo.load`` reads: KAIR's DnCNN, the bare conv stacks of DnCNN's
original releases (the real CDnCNN-B), SwinIR, NAFNet, ... ``model.residual: true`` says the network
predicts the noise (clean = noisy − net(noisy)).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

import tunify.zoo as zoo
from tunify.recipes._base import DENOISING_EFFECTS, Recipe, load_network, multi_loss
from tunify.recipes._cli import main


class NoiseToClean(nn.Module):
    """clean = noisy − net(noisy), for residual denoisers whose architecture has no residual switch."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.net(x)


def _grey_to_colour(state: dict[str, torch.Tensor], first: str, last: str) -> dict[str, torch.Tensor]:
    """A 1-channel residual denoiser as a 3-channel one that removes the noise of the channel mean: the first
    layer reads (R + G + B)/3 and the noise it predicts is subtracted from every channel, which is exactly the
    mean component of white noise. The colour network starts from the grey one's features; fine-tuning
    then teaches it the chroma noise."""
    out = dict(state)
    out[f"{first}.weight"] = state[f"{first}.weight"].repeat(1, 3, 1, 1) / 3
    out[f"{last}.weight"] = state[f"{last}.weight"].repeat(3, 1, 1, 1)
    out[f"{last}.bias"] = state[f"{last}.bias"].repeat(3)
    return out


def _he_init(net: nn.Module) -> None:
    """He-normal convolutions and zero biases, DnCNN's own scheme: PyTorch's default init shrinks the signal
    through a deep plain ReLU stack, and such a network then sits at the identity for hundreds of steps."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """The denoiser of ``model.init`` (or ``model.arch`` from scratch), residual as ``model.residual`` says."""
    model_cfg = cfg["model"]
    residual = bool(model_cfg.get("residual", True))
    scratch = (model_cfg.get("init") or "scratch") == "scratch"
    net = load_network(cfg)  # a checkpoint: bare DnCNN stacks (CDnCNN-B) and all that spandrel detects
    if scratch and model_cfg.get("he_init"):
        _he_init(net)
    grey_dncnn = type(net).__name__ == "DnCNN" and net.hyperparameters["in_nc"] == 1
    if not scratch and model_cfg.get("colour_from_grey") and grey_dncnn:
        kw = {**net.hyperparameters, "in_nc": 3, "out_nc": 3}
        n = len(net.model)
        colour = zoo.build({"architecture": "DnCNN", "kwargs": kw})
        colour.load_state_dict(_grey_to_colour(net.state_dict(), "model.0", f"model.{n - 1}"))
        net = colour
    if type(net).__name__ == "DnCNN":  # spandrel's DnCNN carries the residual as mode DnCNN vs FDnCNN
        mode = "DnCNN" if residual else "FDnCNN"
        net.mode = net.hyperparameters["mode"] = mode
        return net
    return NoiseToClean(net) if residual else net


def build_loss(cfg: dict[str, Any]) -> Any:
    """L = ω_0 λ_0 L1(x̂, y) + ω_1 λ_1 L1(x̂, y + ω_1 ν (z − y)), the paper's denoising pair."""
    return multi_loss(cfg)


RECIPE = Recipe(
    name="denoise",
    task="denoising",
    summary="Tunable denoiser from any convolutional denoiser (checkpoint or scratch); "
    "ω = (reconstruction, noise preservation).",
    build_model=build_model,
    build_loss=build_loss,
    omega_effects=DENOISING_EFFECTS,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
