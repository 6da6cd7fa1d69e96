"""ω maps through window attention: the image's windows are folded into the batch, and the map follows them.

Swin-style blocks (SwinIR, Swin2SR, HAT, DRCT, Uformer, SCUNet) shift the feature map by ``shift_size``,
cut it into ``window_size`` windows and run attention on them (B·windows rows of window pixels; SCUNet
keeps the windows in dimension 1): the Linear layers inside see windows, not images. A block that names
its window and shift declares that layout, so at conversion every Linear layer inside it learns its
block's layout (:func:`note_windows`), and under an ω map partitions the map the way the block partitions
its features (:func:`window_tokens`): each token gets its own pixel's ω. Anywhere else folded rows take
each image's average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class WindowLayout:
    """Window side and cyclic shift per image dimension (rows, columns)."""

    size: tuple[int, int]
    shift: tuple[int, int]

    def keeps_order(self, grid: tuple[int, ...]) -> bool:
        """Whether cutting ``grid`` into windows leaves its pixels in raster order: one window, no shift."""
        return tuple(grid) == self.size and not any(self.shift)


def window_layout(module: nn.Module) -> WindowLayout | None:
    """The layout a Swin-style block declares: an integer (or pair) ``window_size`` (Uformer: ``win_size``)
    and ``shift_size``, or SCUNet's ``type``, "W" (no shift) or "SW" (half a window)."""
    size = _pair(getattr(module, "window_size", getattr(module, "win_size", None)))
    shift = getattr(module, "shift_size", None)
    kind = getattr(module, "type", None)  # on other modules, nn.Module's type() method
    if shift is None and size is not None and kind in ("W", "SW"):
        shift = (size[0] // 2, size[1] // 2) if kind == "SW" else 0
    pairs = [size, _pair(shift)]
    if None in pairs or min(pairs[0]) < 1:
        return None
    return WindowLayout(*pairs)


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, tuple | list) and len(value) == 2 and all(type(v) is int for v in value):
        return (value[0], value[1])
    return None


def note_windows(model: nn.Module, layer_type: type[nn.Module]) -> None:
    """Give every ``layer_type`` layer inside a Swin-style block that block's layout (the innermost
    block's)."""
    for block in model.modules():  # parents before children: an inner block overrides an outer one
        layout = window_layout(block)
        if layout is not None:
            for layer in block.modules():
                if isinstance(layer, layer_type):
                    layer.window = layout


def fits_windows(
    layout: WindowLayout, grid: tuple[int, ...], batch: int, rows: int, tokens: tuple[int, ...]
) -> bool:
    """Whether a layer input of ``rows`` rows of ``tokens`` is ``batch`` images of ``grid`` cut into windows:
    folded into the batch (Swin: B·windows rows of window pixels) or one row per image (SCUNet: B rows of
    windows × window pixels)."""
    if len(grid) != 2 or grid[0] % layout.size[0] or grid[1] % layout.size[1]:
        return False
    windows, pixels = (grid[0] // layout.size[0]) * (grid[1] // layout.size[1]), math.prod(layout.size)
    if rows == batch and tokens == (windows, pixels):
        return True
    return rows == batch * windows and tokens in ((pixels,), layout.size)


def window_tokens(alpha: Tensor, layout: WindowLayout) -> Tensor:
    """A per-pixel map (B, k, H, W) shifted and cut as the block cuts its features: (B·windows, window
    pixels, k), image-major, windows and their pixels in raster order."""
    b, k, h, w = alpha.shape
    (wh, ww), (sh, sw) = layout.size, layout.shift
    if sh or sw:
        alpha = torch.roll(alpha, shifts=(-sh, -sw), dims=(2, 3))
    windows = alpha.reshape(b, k, h // wh, wh, w // ww, ww).permute(0, 2, 4, 3, 5, 1)
    return windows.reshape(-1, wh * ww, k)
