"""Inference on images of any size: overlapping tiles blended with a smooth window, for any output scale.

Whole high-resolution images do not fit in memory for SwinIR/NAFNet-sized networks. Each tile sees zero
padding at its borders, so its outputs near a border differ from the untiled result; the window gives those
pixels weight 0 (a margin of a quarter of the overlap) and ramps with a raised cosine over the middle of the
overlap, so for a network whose receptive-field radius fits in the margin the blend equals the untiled output.
The overlap is measured for the network by default (:func:`auto_overlap`). An ω map (one ω per pixel) is
cut into the same tiles as the image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def network_input(model: Any, x: Tensor) -> Tensor:
    """A copy of ``x`` for ``model`` to run on, in the memory layout it runs fastest in.

    A copy, because some networks overwrite their input (spandrel's RCAN scales it in place), which must
    reach neither the caller's picture nor a neighbouring tile.
    """
    return x.clone(memory_format=_fastest_format(model, x))


def _fastest_format(model: Any, x: Tensor) -> torch.memory_format:
    """Channels-last for purely convolutional networks on the CPU (oneDNN's convolutions take ~30 % less
    time in it: DnCNN at 512², NAFNet); networks with linear or attention layers gain nothing from it."""
    if x.ndim != 4 or x.device.type != "cpu" or not isinstance(model, nn.Module):
        return torch.contiguous_format
    modules = [(name.rpartition(".")[2], m) for name, m in model.named_modules()]
    convolutional = any(isinstance(m, nn.Conv2d) for _, m in modules) and not any(
        isinstance(m, nn.Linear | nn.MultiheadAttention) and name != "phi" for name, m in modules
    )  # (a tunable layer's φ is a small Linear of its own: not the network's)
    return torch.channels_last if convolutional else torch.contiguous_format


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile starts covering [0, length), the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def _ramp(n: int, device: torch.device) -> Tensor:
    """Weights over an overlap of ``n`` pixels running from a tile's edge inwards: 0, then a cosine ramp, then 1."""
    margin = n // 4
    width = max(n - 2 * margin, 1)
    t = (torch.arange(n, device=device, dtype=torch.float32) - margin + 0.5) / width
    return 0.5 - 0.5 * torch.cos(math.pi * t.clamp(0.0, 1.0))


def _window(
    start: int, size: int, prev_end: int | None, next_start: int | None, scale: int, device: torch.device
) -> Tensor:
    """1-D output-space window of a tile: ramps only on sides shared with a neighbouring tile."""
    w = torch.ones(size * scale, device=device)
    if prev_end is not None and prev_end > start:
        n = (prev_end - start) * scale
        w[:n] = torch.minimum(w[:n], _ramp(n, device))
    if next_start is not None and start + size > next_start:
        n = (start + size - next_start) * scale
        w[-n:] = torch.minimum(w[-n:], _ramp(n, device).flip(0))
    return w


def _axis_windows(starts: list[int], size: int, scale: int, device: torch.device) -> list[Tensor]:
    """The blending window of every tile along one axis (computed once, shared by the other axis' tiles)."""
    return [
        _window(
            start,
            size,
            starts[k - 1] + size if k else None,
            starts[k + 1] if k + 1 < len(starts) else None,
            scale,
            device,
        )
        for k, start in enumerate(starts)
    ]


def blend_omega_map(levels: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """A per-pixel ω map (p, H, W) from levels (1, H, W) in [0, 1]: ``low`` at 0 (black), ``high`` at 1 (white)."""
    return low.view(-1, 1, 1) + levels * (high - low).view(-1, 1, 1)


def _crop_omega(omega: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """The part of an ω map under one tile (a vector ω is the same for every tile)."""
    if omega.ndim < 3:
        return omega
    return omega[..., top : top + height, left : left + width]


def infer_scale(model: Any, x: Tensor, omega: Tensor, probe: int = 16) -> int:
    """The integer output/input size ratio of an image-to-image model, from a small probe crop."""
    h, w = min(probe, x.shape[-2]), min(probe, x.shape[-1])
    with torch.inference_mode():
        y = model(
            x[:1, :, :h, :w].clone(),
            omega=_crop_omega(omega[:1] if omega.ndim in (2, 4) else omega, 0, 0, h, w),
        )
    if not isinstance(y, Tensor) or y.ndim != 4:
        raise ValueError("tiled inference needs an image-to-image model returning a (B, C, H, W) tensor")
    scale = y.shape[-2] / h
    if scale != int(scale) or y.shape[-1] != w * scale or scale < 1:
        raise ValueError(f"the model maps {h}x{w} to {y.shape[-2]}x{y.shape[-1]}: not an integer upscaling")
    return int(scale)


INFLUENCE_TOLERANCE = 1e-3
"""A change of the output below this (a quarter of an 8-bit level) counts as none when measuring how far
a network's output depends on its input (:func:`influence_radius`)."""


def influence_radius(model: Any, x: Tensor, omega: Tensor, size: int = 128, scale: int = 1) -> int | None:
    """How many input pixels away a change of the picture still moves the output (by more than
    :data:`INFLUENCE_TOLERANCE`): measured on a ``size`` × ``size`` crop of ``x`` whose left half is
    replaced by noise, as the largest distance right of that half at which the output changed. This is
    the part of the theoretical receptive field that matters for a trained network (a 20-layer DnCNN: 14
    to 20 of its 20 pixels). None when the change reaches across the whole crop: global pooling or
    attention, which no tiling reproduces exactly. ``scale`` is the network's output/input size ratio."""
    crop = x[:1, :, :size, :size].clone()
    half = crop.shape[-1] // 2
    changed = crop.clone()
    changed[..., :half] = torch.rand(changed[..., :half].shape, generator=torch.Generator().manual_seed(0))
    omega = _crop_omega(omega[:1] if omega.ndim in (2, 4) else omega, 0, 0, *crop.shape[-2:])
    with torch.inference_mode():
        difference = (model(crop, omega=omega) - model(changed, omega=omega)).abs()
    columns = (
        difference.flatten(0, -2).amax(dim=0)[half * scale :] > INFLUENCE_TOLERANCE
    )  # right of the change
    if not columns.any():
        return 0
    reach = int(columns.nonzero().max()) + 1
    return None if reach == columns.numel() else math.ceil(reach / scale)


def auto_overlap(model: Any, x: Tensor, omega: Tensor, tile: int, scale: int | None = None) -> int:
    """The overlap that makes :func:`tiled_forward` seamless for ``model``: 4× its influence radius (the
    blend gives the outer quarter of an overlap no weight), a multiple of 8, at most ``tile`` / 2. A
    network whose every pixel depends on the whole picture gets ``tile`` / 4 (the seams there are small,
    never zero)."""
    scale = scale or infer_scale(model, x, omega)
    radius = influence_radius(model, x, omega, size=max(16, min(tile // 4, *x.shape[-2:])), scale=scale)
    if radius is None:
        return tile // 4
    return min(tile // 2, 8 * math.ceil(4 * radius / 8))


class PerChannel(nn.Module):
    """A greyscale network (one input channel) on colour images: each channel runs as a greyscale image of
    its own, so a colour photo keeps its colour; an image whose channels are equal (a grey picture read as
    RGB) runs once. Called like the network, ``(x, omega=...)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, omega: Tensor) -> Tensor:
        b, c, *size = x.shape
        if (x == x[:, :1]).all():
            y = self.model(x[:, :1], omega=omega)
            return y.expand(-1, c, *y.shape[2:]) if y.shape[1] == 1 else y
        # one ω (or map) per image: the same for each of its channels
        if omega.ndim in (2, 4) and omega.shape[0] == b:
            omega = omega.repeat_interleave(c, dim=0)
        y = self.model(x.reshape(b * c, 1, *size), omega=omega)
        if y.shape[1] != 1:
            raise ValueError(
                f"a network that takes one channel and gives {y.shape[1]} cannot run channel by channel"
            )
        return y.reshape(b, c, *y.shape[2:])


def for_images(model: Any, x: Tensor, omega: Tensor, probe: int = 16) -> Any:
    """``model``, or :class:`PerChannel` around it when it takes greyscale input: tried on a small crop of
    ``x`` (B, 3, H, W) as it is, then on one channel. Where neither runs, ``model`` as it is, for the real
    call to report why."""
    crop = x[:1, :, :probe, :probe].clone()  # a copy: the network may write into its input
    omega = _crop_omega(omega[:1] if omega.ndim in (2, 4) else omega, 0, 0, *crop.shape[-2:])
    for image, runner in ((crop, model), (crop[:, :1], PerChannel(model))):
        try:
            with torch.inference_mode():
                model(image.clone(), omega=omega)
        except RuntimeError:
            continue
        return runner
    return model


def tiled_forward(
    model: Any,
    x: Tensor,
    omega: Tensor,
    *,
    tile: int = 512,
    overlap: int | str = "auto",
    scale: int | None = None,
    progress: bool = True,
) -> Tensor:
    """``model(x, omega=omega)`` computed tile by tile (under ``inference_mode``); x is (B, C, H, W).

    ``omega`` is (p,), (B, p), or a map (p, H, W) / (B, p, H, W) of the image's size.

    ``scale`` is the output/input size ratio (SR networks); inferred with a probe when None. Images no
    larger than ``tile`` run in one call. ``overlap`` (pixels) should be at least 4× the network's
    receptive-field radius for seamless (exact) results; ``"auto"`` measures it (:func:`auto_overlap`).
    """
    if x.ndim != 4:
        raise ValueError(f"expected an image batch (B, C, H, W), got shape {tuple(x.shape)}")
    if (overlap != "auto" and not isinstance(overlap, int)) or tile < 8:
        raise ValueError(
            f"need tile >= 8 and an overlap in pixels or 'auto', got tile={tile}, overlap={overlap!r}"
        )
    if isinstance(overlap, int) and not 0 <= overlap <= tile // 2:
        raise ValueError(f"need 0 <= overlap <= tile/2, got tile={tile}, overlap={overlap}")
    omega = torch.as_tensor(omega, dtype=torch.float32, device=x.device)
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        with torch.inference_mode():
            return model(network_input(model, x), omega=omega).contiguous()
    scale = scale or infer_scale(model, x, omega)
    if overlap == "auto":
        overlap = auto_overlap(model, x, omega, tile, scale)
    step = tile - overlap
    rows, cols = _starts(height, tile, step), _starts(width, tile, step)
    out: Tensor | None = None
    weight = torch.zeros(1, 1, height * scale, width * scale, device=x.device)
    bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", disable=not progress, leave=False)
    th, tw = min(tile, height), min(tile, width)
    layout = _fastest_format(model, x)  # each tile a copy in it (see network_input)
    row_windows = _axis_windows(rows, th, scale, x.device)
    col_windows = _axis_windows(cols, tw, scale, x.device)
    with torch.inference_mode():
        for top, wy in zip(rows, row_windows, strict=True):
            for left, wx in zip(cols, col_windows, strict=True):
                tile_omega = _crop_omega(omega, top, left, th, tw)
                tile_x = x[..., top : top + th, left : left + tw].clone(memory_format=layout)
                y = model(tile_x, omega=tile_omega)
                if out is None:
                    out = torch.zeros(
                        *y.shape[:2], height * scale, width * scale, device=x.device, dtype=y.dtype
                    )
                w2 = wy[:, None] * wx[None, :]
                region = (
                    ...,
                    slice(top * scale, (top + th) * scale),
                    slice(left * scale, (left + tw) * scale),
                )
                out[region] += y * w2
                weight[region] += w2
                bar.update()
    bar.close()
    assert out is not None  # at least one tile always runs
    return (out / weight).contiguous()
