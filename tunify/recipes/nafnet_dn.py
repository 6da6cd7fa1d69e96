"""Tunable NAFNet denoising: ω = (reconstruction, noise preservation); NAFNet's β/γ become tunable too.

python -m tunify.recipes.nafnet_dn --init NAFNet-SIDD-width32.pth --train-dir my_clean_images
python -m tunify.recipes.nafnet_dn --preset smoke --out runs/nafnet-dn-smoke
"""

from __future__ import annotations

import sys

from tunify.recipes._base import DENOISING_EFFECTS, Recipe, load_network, multi_loss
from tunify.recipes._cli import main

RECIPE = Recipe(
    name="nafnet_dn",
    task="denoising",
    summary="Tunable NAFNet denoising; ω = (reconstruction, noise preservation).",
    build_model=load_network,
    build_loss=multi_loss,
    omega_effects=DENOISING_EFFECTS,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
