"""Tunable SwinIR colour denoising: ω = (reconstruction, noise preservation).

python -m tunify.recipes.swinir_dn --init 005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth --train-dir DFWB
python -m tunify.recipes.swinir_dn --preset smoke --out runs/swinir-dn-smoke
"""

from __future__ import annotations

import sys

from tunify.recipes._base import DENOISING_EFFECTS, Recipe, load_network, multi_loss
from tunify.recipes._cli import main

RECIPE = Recipe(
    name="swinir_dn",
    task="denoising",
    summary="Tunable SwinIR colour denoising; ω = (reconstruction, noise preservation).",
    build_model=load_network,
    build_loss=multi_loss,
    omega_effects=DENOISING_EFFECTS,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
