"""FFDNet (Zhang, Zuo and Zhang, TIP 2018), the one pretrained denoiser in ``../shared`` spandrel lacks.

The authors' release is a MatConvNet net whose 3×3 convolutions load into a bare ``nn.Sequential``
(``0.weight`` … ``22.bias``); :func:`tunify.zoo.load` recognises that layout and reads it into this class.
FFDNet runs at half resolution: the image is split into four sub-images (stacked as channels), a
noise-level map σ/255 is appended as one more channel, and the convolutions' output is put back together.
Its sub-image order is not ``F.pixel_unshuffle``'s: channel 4c + k holds the pixels at row offset k mod 2
and column offset k // 2 (the row offset varies fastest); ``pixel_unshuffle``'s order costs 2 dB on Kodak24.

FFDNet is non-blind: it denoises as much as the σ it is given. ``noise_level`` (σ on the 0–255 scale) is
what a call without ``sigma`` uses, so the network runs like any image-to-image model (``tunify apply``, the
app); a tunable FFDNet then has two controls, σ and ω.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _split(x: Tensor, c: int) -> Tensor:
    """(B, c, 2h, 2w) → (B, 4c, h, w) in FFDNet's order: sub-image k = 2·(column offset) + (row offset)."""
    b, _, h2, w2 = x.shape
    return (
        x.reshape(b, c, h2 // 2, 2, w2 // 2, 2).permute(0, 1, 5, 3, 2, 4).reshape(b, 4 * c, h2 // 2, w2 // 2)
    )


def _merge(y: Tensor, c: int) -> Tensor:
    """The inverse of :func:`_split`."""
    b, _, h, w = y.shape
    return y.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 3, 5, 2).reshape(b, c, 2 * h, 2 * w)


class FFDNet(nn.Module):
    """FFDNet: ``in_nc`` image channels (3 colour, 1 grey), ``nb`` 3×3 convolutions of width ``nc``.

    ``forward(x, sigma=None)``: x (B, in_nc, H, W) in [0, 1], any H and W (odd sizes repeat the last row or
    column, as the authors' demo does); ``sigma`` on the 0–255 scale, a number or one value per sample
    ((B,) or (B, 1, 1, 1)), ``noise_level`` when None.
    """

    def __init__(self, in_nc: int = 3, nc: int = 96, nb: int = 12, noise_level: float = 25.0) -> None:
        super().__init__()
        if nb < 2:
            raise ValueError(f"FFDNet needs at least 2 convolutions, got nb={nb}")
        self.in_nc, self.nc, self.nb, self.noise_level = in_nc, nc, nb, float(noise_level)
        self.in_channels = in_nc  # what an input has (its first convolution takes 4·in_nc + 1)
        layers: list[nn.Module] = [nn.Conv2d(4 * in_nc + 1, nc, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, 4 * in_nc, 3, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def hyperparameters(self) -> dict[str, float | int]:
        """The constructor's keywords as they stand (``noise_level`` may be changed after construction)."""
        return {"in_nc": self.in_nc, "nc": self.nc, "nb": self.nb, "noise_level": self.noise_level}

    def forward(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        h, w = x.shape[-2:]
        sub = _split(F.pad(x, (0, w % 2, 0, h % 2), mode="replicate"), self.in_nc)
        sigma = self.noise_level if sigma is None else sigma
        level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1) / 255.0
        level = level.expand(sub.shape[0], 1, *sub.shape[-2:])
        y = self.model(torch.cat([sub, level], dim=1))
        return _merge(y, self.in_nc)[..., :h, :w]
