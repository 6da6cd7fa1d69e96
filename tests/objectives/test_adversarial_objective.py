from __future__ import annotations

import math

import pytest
import torch

from tunify.objectives import (
    Discriminator,
    GANObjective,
    ParametricMultiLoss,
    relativistic_discriminator_loss,
    relativistic_generator_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.fixture(scope="module")
def gan() -> GANObjective:
    torch.manual_seed(0)
    return GANObjective(pretrained=False, discriminator_features=8)


def test_relativistic_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, -2.0])
    # real - mean(fake) = [3, 1]; fake - mean(real) = [-1, -3]
    g = relativistic_generator_loss(real, fake)
    d = relativistic_discriminator_loss(real, fake)
    torch.testing.assert_close(g, torch.tensor([softplus(3) + softplus(1)] * 2) / 2)
    torch.testing.assert_close(d, torch.tensor([softplus(-3) + softplus(-1)] * 2) / 2)


@pytest.mark.parametrize("size", [(16, 16), (24, 40), (48, 32)])
def test_discriminator_accepts_any_size(size):
    d = Discriminator(num_features=4)
    assert d(torch.rand(3, 3, *size)).shape == (3,)


def test_discriminator_has_four_scales_and_global_pool():
    d = Discriminator(num_features=4)
    strided = [m for m in d.body if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 4
    assert isinstance(d.pool, torch.nn.AdaptiveAvgPool2d)


def test_gan_objective_combines_its_terms(gan, batch):
    out = torch.rand_like(batch["clean"])
    loss = gan(out, batch, torch.zeros(2, 1), 0)
    assert loss.shape == (2,)
    l1 = (out - batch["clean"]).abs().mean((1, 2, 3))
    with torch.no_grad():
        feats = gan.vgg(out)["conv5_4"], gan.vgg(batch["clean"])["conv5_4"]
        adv = relativistic_generator_loss(gan.discriminator(batch["clean"]), gan.discriminator(out))
    perceptual = (feats[0] - feats[1]).abs().mean((1, 2, 3))
    torch.testing.assert_close(loss, 0.01 * l1 + perceptual + 0.005 * adv)
    torch.testing.assert_close(gan.last_terms["perceptual"], perceptual.mean())


def test_generator_step_does_not_train_discriminator(gan, batch):
    gan.zero_grad(set_to_none=True)
    out = torch.rand_like(batch["clean"], requires_grad=True)
    gan(out, batch, torch.zeros(2, 1), 0).sum().backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in gan.discriminator.parameters())
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_discriminator_step_trains_only_discriminator(gan, batch):
    gan.zero_grad(set_to_none=True)
    out = torch.rand_like(batch["clean"], requires_grad=True)
    d_loss = gan.discriminator_step_loss(out, batch)
    assert d_loss.dim() == 0
    d_loss.backward()
    assert out.grad is None
    assert all(p.grad is not None for p in gan.discriminator.parameters())
    with pytest.raises(ValueError, match="shapes differ"):
        gan.discriminator_loss(batch["clean"], batch["clean"][:, :, :8])


def test_multi_loss_exposes_discriminator_and_sub_terms(gan, batch):
    loss_fn = ParametricMultiLoss(["reconstruction", gan])
    assert loss_fn.has_discriminator
    assert len(list(loss_fn.discriminator_parameters())) == len(list(gan.discriminator.parameters()))
    out = torch.rand_like(batch["clean"])
    _, terms = loss_fn(out, batch, torch.tensor([0.5, 0.5]))
    assert {"reconstruction", "gan", "gan/l1", "gan/perceptual", "gan/adversarial"} <= set(terms)
    torch.testing.assert_close(
        loss_fn.discriminator_step_loss(out, batch), gan.discriminator_step_loss(out, batch)
    )
    assert not ParametricMultiLoss(["reconstruction"]).has_discriminator
    with pytest.raises(ValueError, match="no objective"):
        ParametricMultiLoss(["reconstruction"]).discriminator_step_loss(out, batch)
