"""Style-transfer objective: Gram-matrix style loss, feature content loss, total variation, chroma loss.

Follows Johnson et al. (ECCV 2016) as used for the tunable StyleNet of Maggioni et al. (CVPR 2023, Sec. 5.3):
style = ‖G(φ(x̂)) − G(φ(s))‖²_F with φ = VGG-19 relu3_3, content = ‖φ(x̂) − φ(c)‖²₂, plus total variation
and an L2 on the YUV chroma channels so the output keeps the content's colours.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .base import Batch, Objective, batch_tensor, per_sample_mse, register_objective
from .vgg import VGGFeatures

# BT.601 analogue RGB -> YUV; rows are Y, U, V.
_RGB_TO_YUV = (
    (0.299, 0.587, 0.114),
    (-0.14713, -0.28886, 0.436),
    (0.615, -0.51499, -0.10001),
)


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C·H·W, so it does not scale with image size."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(image: Tensor) -> Tensor:
    """Anisotropic total variation per sample (B,): mean |vertical diff| + mean |horizontal diff|."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().flatten(1).mean(1)
    return dx + dy


def rgb_to_yuv(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> YUV (BT.601 analogue)."""
    matrix = torch.tensor(_RGB_TO_YUV, dtype=image.dtype, device=image.device)
    return torch.einsum("ij,bjhw->bihw", matrix, image)


@register_objective("style")
class StyleObjective(Objective):
    """Weighted sum of style (Gram), content (features), total variation and chroma losses, per sample.

    The defaults are a starting point (content 1, style 10, TV 1e-3, chroma 1); the paper does not publish
    its weights, so tune them per style image. Does not depend on ω.

    Args:
        style_image: (3, H, W) or (1, 3, H, W) RGB in [0, 1]; its Gram matrix is computed once.
        content_key: batch entry holding the content image (the network input for style transfer).
    """

    def __init__(
        self,
        style_image: Tensor,
        *,
        style_weight: float = 10.0,
        content_weight: float = 1.0,
        tv_weight: float = 1e-3,
        chroma_weight: float = 1.0,
        vgg_layer: str = "relu3_3",
        pretrained: bool = True,
        vgg_weights: str | Path | None = None,
        content_key: str = "input",
    ) -> None:
        super().__init__()
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        if style_image.dim() != 4 or style_image.shape[:2] != (1, 3):
            raise ValueError(f"style_image must be (3, H, W) or (1, 3, H, W), got {tuple(style_image.shape)}")
        self.style_weight, self.content_weight = style_weight, content_weight
        self.tv_weight, self.chroma_weight = tv_weight, chroma_weight
        self.vgg_layer, self.content_key = vgg_layer, content_key
        self.vgg = VGGFeatures((vgg_layer,), pretrained=pretrained, weights_path=vgg_weights)
        with torch.no_grad():
            gram = gram_matrix(self.vgg(style_image.float())[vgg_layer])
        self.register_buffer("style_gram", gram, persistent=False)  # [1, C, C]

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        content = batch_tensor(batch, self.content_key, output)
        out_features = self.vgg(output)[self.vgg_layer]
        with torch.no_grad():
            content_features = self.vgg(content)[self.vgg_layer]
        style = (gram_matrix(out_features) - self.style_gram).square().sum((1, 2))
        content_loss = per_sample_mse(out_features, content_features)
        tv = total_variation(output)
        chroma = per_sample_mse(rgb_to_yuv(output)[:, 1:], rgb_to_yuv(content)[:, 1:])
        self.last_terms = {
            "style": style.detach().mean(),
            "content": content_loss.detach().mean(),
            "tv": tv.detach().mean(),
            "chroma": chroma.detach().mean(),
        }
        return (
            self.style_weight * style
            + self.content_weight * content_loss
            + self.tv_weight * tv
            + self.chroma_weight * chroma
        )

    def extra_repr(self) -> str:
        return (
            f"style_weight={self.style_weight}, content_weight={self.content_weight}, "
            f"tv_weight={self.tv_weight}, chroma_weight={self.chroma_weight}, vgg_layer={self.vgg_layer!r}"
        )
