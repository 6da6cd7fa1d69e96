"""``--omega-map``: an image that gives every pixel its own ω (per-region control)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import read_image
from ..inference import blend_omega_map
from ._common import UsageError, parse_omega


def default_ends(p: int) -> tuple[str, str]:
    """A greyscale map's ω at black and at white when not given: the two ends of a p = 2 trade-off."""
    if p != 2:
        raise UsageError(f"a greyscale --omega-map needs --omega-range A B (two ω of {p} values) for p = {p}")
    return "0,1", "1,0"


def read_omega_map(
    path: str, p: int, size: tuple[int, int], ends: list[str] | None, allow_extrapolation: bool = False
) -> torch.Tensor:
    """The map (p, H, W) for an image of ``size``: a greyscale image blends the two ω of ``ends`` (black →
    first, white → second); an image with p channels (RGB for p = 3) gives ω directly. Resized bilinearly."""
    try:
        levels = read_image(path, gray_to_rgb=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"--omega-map {path}: not a readable image ({error})") from None
    if levels.shape[0] == 1:
        low, high = ends or default_ends(p)
        omega = blend_omega_map(
            levels, parse_omega(low, p, allow_extrapolation), parse_omega(high, p, allow_extrapolation)
        )
    elif levels.shape[0] == p:
        if ends:
            raise UsageError("--omega-range applies to greyscale maps; this map has one channel per ω entry")
        omega = levels
    else:
        raise UsageError(
            f"--omega-map {path} has {levels.shape[0]} channels: give a greyscale map (with --omega-range) or "
            f"one channel per ω entry (p = {p})"
        )
    return F.interpolate(omega[None], size=size, mode="bilinear", align_corners=False)[0]
