"""Tunable joint denoising and deblurring with two independent parameters: ω = (noise kept, sharpening).

    python -m tunify.recipes.deblur --init ../shared/pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth
    python -m tunify.recipes.deblur --preset smoke --out runs/deblur-smoke

One ω-dependent objective (the paper's non-convex setting, Sec. 4): L1 to ỹ = y_η + ω_1 γ (y_η − g⊛y_η)
with y_η = y + ω_0 ν (z − y); ω = (0, 0) is fidelity, ω_0 keeps noise, ω_1 over-sharpens, independently.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import Tensor, nn

from tunify.objectives import noise_preservation_target, unsharp_mask_target
from tunify.recipes._base import Recipe, multi_loss
from tunify.recipes._cli import main
from tunify.recipes.denoise import build_model


def build_loss(cfg: dict[str, Any]) -> Any:
    """A single unsharp-mask objective read by both ω entries, with a constant weight (``weight_by: [null]``)."""
    return multi_loss(cfg)


def sweep_options(cfg: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """PSNR_η against the training target of each ω, so every grid point is scored on its own objective
    (the sweep passes clean + the recorded noise as ``degraded``: the blur is never kept)."""
    objective = cfg["objectives"][0]
    gamma, nu = objective.get("gamma", 8.0), objective.get("nu", 0.9)

    def target(clean: Tensor, degraded: Tensor, omega: Tensor) -> Tensor:
        kept = noise_preservation_target(clean, degraded, omega[:, 0], nu)
        return unsharp_mask_target(kept, omega[:, 1], gamma)

    return {"target_fn": target}


RECIPE = Recipe(
    name="deblur",
    task="deblurring",
    summary="Tunable joint noise and blur removal; ω = (noise preservation, unsharp-mask sharpening), "
    "independent.",
    build_model=build_model,
    build_loss=build_loss,
    omega_effects=(
        ("noise_preservation", "keeps a fraction of the input noise (0: clean)"),
        ("sharpening", "unsharp mask beyond the ground truth (0: as sharp as the clean image)"),
    ),
    sweep_options=sweep_options,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
