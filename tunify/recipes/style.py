"""Tunable style transfer with three styles (p = 3): ω mixes the styles of one network (paper Sec. 5.3).

    python -m tunify.recipes.style --styles wave.jpg scream.jpg mosaic.jpg --train-dir coco_images
    python -m tunify.recipes.style --preset smoke --out runs/style-smoke

Objective i is the Johnson et al. style loss of style image i (VGG-19 relu3_3 Gram matrices, content,
total variation and chroma), weighted by ω_i; the content images are the network inputs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

import torch.nn.functional as F

from tunify.data import read_image
from tunify.objectives import StyleObjective
from tunify.recipes._base import Recipe, load_network, multi_loss, resolve_path
from tunify.recipes._cli import main
from tunify.recipes._config import ConfigError


def style_image(path: str, size: int) -> Any:
    """A style image with its long side at most ``size`` (Gram statistics depend on the scale of strokes)."""
    img = read_image(resolve_path(path))[None]
    scale = size / max(img.shape[-2:])
    return F.interpolate(img, scale_factor=scale, mode="area")[0] if scale < 1 else img[0]


def build_loss(cfg: dict[str, Any]) -> Any:
    """One style objective per style image, objective i weighted by ω_i."""
    styles = cfg["styles"]
    if len(styles) != cfg["p"]:
        raise ConfigError(
            f"the style recipe needs p = {cfg['p']} style images (--styles A B C), got {styles}"
        )
    options = dict(cfg["style_loss"])
    size = options.pop("style_size")
    if options.get("pretrained") is False:
        warnings.warn(
            "style objectives with a randomly initialised VGG-19 (pretrained: false): "
            "a pipeline check, not a style loss",
            stacklevel=2,
        )
    return multi_loss(cfg, [StyleObjective(style_image(s, size), **options) for s in styles])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--styles", nargs="+", metavar="IMAGE", help="the style images, one per ω entry")


def apply_arguments(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    if args.styles:
        cfg["styles"] = list(args.styles)


RECIPE = Recipe(
    name="style",
    task="style-transfer",
    summary="Tunable style transfer, p = 3: ω_i weighs the style of image i (ω on the simplex mixes them).",
    build_model=load_network,
    build_loss=build_loss,
    omega_effects=tuple((f"style_{i}", f"the style of style image {i} (--styles)") for i in (1, 2, 3)),
    sweep_options=lambda cfg, model: {"target_fn": None},
    add_arguments=add_arguments,
    apply_arguments=apply_arguments,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
