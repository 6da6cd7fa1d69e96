"""The spatial ω map painted with the brush: one ω for the image, another inside the painted regions.

The editor hands back its paint layers as RGBA arrays at the size of the picture it shows (the preview);
whatever has been painted (alpha > 0) on any layer is the region. The map ``W`` of shape (1, p, H, W) is what
``tmodel(x, omega=W)`` takes: ω_base outside the region, ω_region inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def mask_from_layers(
    layers: Sequence[np.ndarray | None], size: tuple[int, int] | None = None
) -> torch.Tensor | None:
    """The painted region (H, W) as 0/1 floats, or None when nothing is painted.

    At ``size`` = (H, W) when given (else the layers' own), resized with nearest-neighbour sampling so that
    the region stays hard-edged.
    """
    mask: torch.Tensor | None = None
    for layer in layers:
        if layer is None:
            continue
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue  # no alpha channel: nothing painted can be told from the picture
        painted = torch.from_numpy(np.ascontiguousarray(layer[:, :, 3] > 0)).float()
        mask = painted if mask is None or mask.shape != painted.shape else torch.maximum(mask, painted)
    if mask is None or not bool(mask.any()):
        return None
    return mask if size is None else resize_mask(mask, size)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A 0/1 mask (H, W) at another size, nearest-neighbour (the download's full resolution)."""
    if tuple(mask.shape) == tuple(size):
        return mask
    return F.interpolate(mask[None, None], size=size, mode="nearest")[0, 0]


def omega_map(base: Sequence[float], region: Sequence[float], mask: torch.Tensor) -> torch.Tensor:
    """(1, p, H, W): ``base`` where ``mask`` (H, W) is 0, ``region`` where it is 1 (blended in between)."""
    if len(base) != len(region):
        raise ValueError(f"base ω has {len(base)} entries but the region's has {len(region)}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {tuple(mask.shape)}")
    b = torch.tensor(base, dtype=torch.float32).view(1, -1, 1, 1)
    r = torch.tensor(region, dtype=torch.float32).view(1, -1, 1, 1)
    m = mask.to(torch.float32)[None, None]
    return b * (1.0 - m) + r * m
