"""Perceptual-adversarial objective (ESRGAN-style) and its discriminator.

L_gan = 0.01·L1 + L1(VGG-19 conv5_4 pre-activation) + 0.005·L_adv with the relativistic-average GAN loss
(Jolicoeur-Martineau 2018; Wang et al., ESRGAN, 2018), as used by Maggioni et al. (CVPR 2023, Table 4).

How a trainer uses it (``loss_fn`` is a ``ParametricMultiLoss`` containing a ``GANObjective``)::

    d_opt = torch.optim.Adam(loss_fn.discriminator_parameters(), lr=1e-4)  # never in the model's optimiser
    loss, terms = loss_fn(output, batch, omega)          # generator step: D is not updated by this backward
    g_opt.zero_grad(); loss.backward(); g_opt.step()
    d_loss = loss_fn.discriminator_step_loss(output, batch)   # fakes are detached inside
    d_opt.zero_grad(); d_loss.backward(); d_opt.step()
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Batch, Objective, batch_tensor, per_sample_l1, register_objective
from .vgg import VGGFeatures


class Discriminator(nn.Module):
    """Conv discriminator with ``num_scales`` stride-2 stages and global average pooling before the MLP head,
    so it accepts any input size (ESRGAN's VGG-style D needs a fixed 128×128 input).

    Returns one logit per sample, shape (B,).
    """

    def __init__(self, *, in_channels: int = 3, num_features: int = 64, num_scales: int = 4) -> None:
        super().__init__()
        if num_scales < 1 or num_features < 1:
            raise ValueError(f"num_scales and num_features must be >= 1, got {num_scales}, {num_features}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_features, 3, padding=1), nn.LeakyReLU(0.2)]
        channels = num_features
        for scale in range(num_scales):
            out = num_features * 2 ** min(scale + 1, 3)
            layers += [
                nn.Conv2d(channels, channels, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(channels, out, 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(channels, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.body(x)).flatten(1)).squeeze(1)  # [B]


def relativistic_generator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Per-sample RaGAN generator loss (B,): fakes should look more real than the average real, and v.v."""
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.zeros_like(real_rel), reduction="none")
        + F.binary_cross_entropy_with_logits(fake_rel, torch.ones_like(fake_rel), reduction="none")
    )


def relativistic_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Per-sample RaGAN discriminator loss (B,): the generator loss with the labels swapped."""
    return relativistic_generator_loss(fake_logits, real_logits)


@register_objective("gan")
class GANObjective(Objective):
    """0.01·L1 + L1 on VGG-19 conv5_4 + 0.005·relativistic adversarial loss, per sample.

    Owns the discriminator as a submodule (``discriminator``); see the module docstring for the training step.
    Does not depend on ω. ``last_terms`` holds the detached sub-term means of the latest call.
    """

    def __init__(
        self,
        *,
        l1_weight: float = 0.01,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 0.005,
        vgg_layer: str = "conv5_4",
        pretrained: bool = True,
        vgg_weights: str | Path | None = None,
        discriminator_features: int = 64,
        target_key: str = "clean",
    ) -> None:
        super().__init__()
        self.l1_weight, self.perceptual_weight = l1_weight, perceptual_weight
        self.adversarial_weight, self.target_key, self.vgg_layer = adversarial_weight, target_key, vgg_layer
        self.vgg = VGGFeatures((vgg_layer,), pretrained=pretrained, weights_path=vgg_weights)
        self.discriminator = Discriminator(num_features=discriminator_features)

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        real = batch_tensor(batch, self.target_key, output)
        l1 = per_sample_l1(output, real)
        with torch.no_grad():
            real_features = self.vgg(real)[self.vgg_layer]
        perceptual = per_sample_l1(self.vgg(output)[self.vgg_layer], real_features)
        adversarial = self._generator_adversarial(real, output)
        self.last_terms = {
            "l1": l1.detach().mean(),
            "perceptual": perceptual.detach().mean(),
            "adversarial": adversarial.detach().mean(),
        }
        return (
            self.l1_weight * l1 + self.perceptual_weight * perceptual + self.adversarial_weight * adversarial
        )

    def _generator_adversarial(self, real: Tensor, fake: Tensor) -> Tensor:
        """RaGAN generator loss with D's parameters excluded from the graph, so only the generator learns."""
        params = list(self.discriminator.parameters())
        previous = [p.requires_grad for p in params]
        self.discriminator.requires_grad_(False)
        try:
            with torch.no_grad():
                real_logits = self.discriminator(real)
            fake_logits = self.discriminator(fake)
        finally:
            for p, flag in zip(params, previous, strict=True):
                p.requires_grad_(flag)
        return relativistic_generator_loss(real_logits, fake_logits)

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Scalar RaGAN loss for a discriminator step; ``fake`` is detached so the generator is untouched."""
        if real.shape != fake.shape:
            raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} shapes differ")
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        return relativistic_discriminator_loss(real_logits, fake_logits).mean()

    def discriminator_step_loss(self, output: Tensor, batch: Batch) -> Tensor:
        """``discriminator_loss(batch[target_key], output)``: what a trainer backpropagates into D."""
        return self.discriminator_loss(batch_tensor(batch, self.target_key, output), output)

    def extra_repr(self) -> str:
        return (
            f"l1_weight={self.l1_weight}, perceptual_weight={self.perceptual_weight}, "
            f"adversarial_weight={self.adversarial_weight}, vgg_layer={self.vgg_layer!r}"
        )
