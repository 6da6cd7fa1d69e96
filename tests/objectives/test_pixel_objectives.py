from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunify.objectives import (
    NoisePreservation,
    Reconstruction,
    UnsharpMask,
    gaussian_kernel,
    noise_preservation_target,
    unsharp_mask_target,
)


def test_noise_preservation_target_on_constant_images():
    clean = torch.full((2, 3, 4, 4), 0.2)
    noisy = torch.full((2, 3, 4, 4), 0.7)
    shared = noise_preservation_target(clean, noisy, 0.5, nu=0.9)
    torch.testing.assert_close(shared, torch.full_like(clean, 0.2 + 0.5 * 0.9 * 0.5))
    per_sample = noise_preservation_target(clean, noisy, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(per_sample[0], clean[0])
    torch.testing.assert_close(per_sample[1], torch.full((3, 4, 4), 0.2 + 0.9 * 0.5))


def test_noise_preservation_target_rejects_bad_shapes():
    clean = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="shapes differ"):
        noise_preservation_target(clean, torch.zeros(2, 3, 4, 5), 0.5)
    with pytest.raises(ValueError, match="strength"):
        noise_preservation_target(clean, clean, torch.ones(3))


def test_gaussian_kernel_matches_hand_built():
    sigma = 2.5
    hand = np.array(
        [[math.exp(-((i - 4) ** 2 + (j - 4) ** 2) / (2 * sigma**2)) for j in range(9)] for i in range(9)]
    )
    hand /= hand.sum()
    torch.testing.assert_close(gaussian_kernel(9, 2.5), torch.tensor(hand, dtype=torch.float32))
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(8, 2.5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(9, 0.0)


def test_unsharp_mask_target_matches_direct_computation():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 12, 10, generator=g, dtype=torch.float64)
    strength = torch.tensor([0.25, 1.0], dtype=torch.float64)
    kernel = gaussian_kernel(9, 2.5, dtype=torch.float64).numpy()
    padded = np.pad(image.numpy(), ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
    blurred = np.zeros(image.shape)
    for y in range(12):
        for x in range(10):
            blurred[:, :, y, x] = (padded[:, :, y : y + 9, x : x + 9] * kernel).sum((-1, -2))
    expected = image.numpy() + strength.numpy()[:, None, None, None] * 8.0 * (image.numpy() - blurred)
    torch.testing.assert_close(unsharp_mask_target(image, strength), torch.tensor(expected))


def test_unsharp_mask_leaves_constant_images_unchanged():
    image = torch.full((1, 3, 10, 10), 0.3)
    torch.testing.assert_close(unsharp_mask_target(image, 1.0), image)


def test_reconstruction_is_per_sample_l1():
    out = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.1)])
    clean = torch.full((2, 3, 4, 4), 0.25)
    loss = Reconstruction()(out, {"clean": clean}, torch.zeros(2, 1), 0)
    torch.testing.assert_close(loss, torch.tensor([0.25, 0.15]))


def test_reconstruction_reports_missing_key_and_shape():
    out = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="'clean'"):
        Reconstruction()(out, {"input": out}, torch.zeros(1, 1), 0)
    with pytest.raises(ValueError, match="shape"):
        Reconstruction()(out, {"clean": torch.zeros(1, 3, 4, 5)}, torch.zeros(1, 1), 0)


def test_noise_preservation_uses_configured_omega_column(batch):
    omega = torch.tensor([[0.0, 1.0], [1.0, 0.3]])
    target = noise_preservation_target(batch["clean"], batch["input"], omega[:, 1])
    assert torch.all(NoisePreservation()(target, batch, omega, 1) < 1e-6)
    by_index = NoisePreservation(omega_index=1)(target, batch, omega, 0)
    assert torch.all(by_index < 1e-6)
    other = NoisePreservation()(target, batch, omega, 0)
    assert torch.all(other > 1e-3)
    with pytest.raises(ValueError, match="out of range"):
        NoisePreservation(omega_index=2)(target, batch, omega, 0)


def test_unsharp_mask_objective_with_and_without_noise_target(batch):
    omega = torch.tensor([[0.5, 1.0], [1.0, 0.2]])
    out = torch.rand_like(batch["clean"])
    plain = UnsharpMask()(out, batch, omega, 1)
    expected = (out - unsharp_mask_target(batch["clean"], omega[:, 1])).abs().mean((1, 2, 3))
    torch.testing.assert_close(plain, expected)

    joint = UnsharpMask(omega_index=1, noise_omega_index=0)(out, batch, omega, 0)
    y_eta = noise_preservation_target(batch["clean"], batch["input"], omega[:, 0])
    expected = (out - unsharp_mask_target(y_eta, omega[:, 1])).abs().mean((1, 2, 3))
    torch.testing.assert_close(joint, expected)


def test_pixel_objectives_pass_gradients(batch):
    out = torch.rand_like(batch["clean"], requires_grad=True)
    omega = torch.rand(2, 1)
    total = sum(
        obj(out, batch, omega, 0).sum() for obj in (Reconstruction(), NoisePreservation(), UnsharpMask())
    )
    total.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_noise_preservation_keeps_the_recorded_noise_not_the_blur() -> None:
    """With blur then noise, the target keeps ω·ν·n (the added noise), never the blur residual."""
    from tunify.data.degradations.chain import blur_noise

    clean = torch.rand(2, 3, 24, 24)
    degraded, params = blur_noise(rho=2.0, sigma=25.0)(clean, torch.Generator().manual_seed(0))
    batch = {"input": degraded, "clean": clean, **params}
    omega = torch.tensor([[0.0, 1.0], [0.0, 0.5]])
    objective = NoisePreservation(omega_index=1)
    expected = clean + omega[:, 1].view(2, 1, 1, 1) * 0.9 * params["noise"]
    loss = objective(expected, batch, omega, 1)
    assert torch.allclose(loss, torch.zeros(2), atol=1e-6)
    without_record = {"input": degraded, "clean": clean}  # then z − y (noise and blur) is kept
    assert (objective(expected, without_record, omega, 1) > 1e-3).all()


@pytest.mark.parametrize("objective", [Reconstruction, NoisePreservation, UnsharpMask])
def test_pixel_objectives_measure_with_l1_mse_or_psnr(objective) -> None:
    clean = torch.rand(2, 3, 16, 16)
    batch = {"clean": clean, "input": clean + 0.1 * torch.randn_like(clean)}
    output, omega = torch.rand_like(clean), torch.zeros(2, 1)  # ω = 0: every target is the clean image
    l1 = objective()(output, batch, omega, 0)
    mse = objective(distance="mse")(output, batch, omega, 0)
    torch.testing.assert_close(l1, (output - clean).abs().flatten(1).mean(1))
    torch.testing.assert_close(mse, (output - clean).square().flatten(1).mean(1))
    psnr = objective(distance="psnr")(output, batch, omega, 0)  # −PSNR of images in [0, 1]
    peak_db = 10 * torch.log10(1 / (output - clean).square().flatten(1).mean(1))
    torch.testing.assert_close(psnr, -peak_db, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"distance must be one of \['l1', 'mse', 'psnr'\], got 'l2'"):
        objective(distance="l2")
