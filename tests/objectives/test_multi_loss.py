from __future__ import annotations

import pytest
import torch

from tunify.objectives import (
    NoisePreservation,
    Objective,
    ParametricMultiLoss,
    Reconstruction,
    UnsharpMask,
    build_objective,
    build_sampler,
    noise_preservation_target,
    objective_names,
    register_objective,
    unsharp_mask_target,
)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean((1, 2, 3))


def test_one_hot_omega_picks_each_samples_objective(batch):
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
    out = torch.rand_like(batch["clean"])
    omega = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y_eta = noise_preservation_target(batch["clean"], batch["input"], omega[:, 1])
    expected = (l1(out, batch["clean"])[0] + l1(out, y_eta)[1]) / 2
    torch.testing.assert_close(loss_fn(out, batch, omega).loss, expected)


def test_weights_scale_each_objective(batch):
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"], weights=[2.0, 3.0])
    out = torch.rand_like(batch["clean"])
    omega = torch.tensor([[0.3, 0.7], [0.6, 0.1]])
    y_eta = noise_preservation_target(batch["clean"], batch["input"], omega[:, 1])
    per_sample = 2.0 * omega[:, 0] * l1(out, batch["clean"]) + 3.0 * omega[:, 1] * l1(out, y_eta)
    result = loss_fn(out, batch, omega)
    torch.testing.assert_close(result.loss, per_sample.mean())
    torch.testing.assert_close(result.terms["reconstruction"], l1(out, batch["clean"]).mean())
    assert all(not t.requires_grad for t in result.terms.values())


def test_shared_omega_equals_expanded(batch):
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation", "unsharp_mask"])
    out = torch.rand_like(batch["clean"])
    omega = torch.tensor([0.2, 0.5, 0.3])
    torch.testing.assert_close(loss_fn(out, batch, omega).loss, loss_fn(out, batch, omega.expand(2, 3)).loss)


def test_constant_weight_for_joint_noise_and_blur(batch):
    loss_fn = ParametricMultiLoss(
        [UnsharpMask(omega_index=1, noise_omega_index=0)], num_params=2, weight_by=[None]
    )
    out = torch.rand_like(batch["clean"])
    omega = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    y_eta = noise_preservation_target(batch["clean"], batch["input"], omega[:, 0])
    expected = l1(out, unsharp_mask_target(y_eta, omega[:, 1])).mean()
    torch.testing.assert_close(loss_fn(out, batch, omega).loss, expected)


def test_specs_by_name_mapping_and_instance():
    loss_fn = ParametricMultiLoss(
        ["reconstruction", {"name": "noise_preservation", "nu": 0.5}, Reconstruction()]
    )
    assert isinstance(loss_fn.objectives[1], NoisePreservation) and loss_fn.objectives[1].nu == 0.5
    assert loss_fn.names == ["reconstruction", "noise_preservation", "reconstruction_1"]
    assert set(objective_names()) >= {"reconstruction", "noise_preservation", "unsharp_mask", "gan", "style"}


def test_gradients_flow_to_output(batch):
    out = torch.rand_like(batch["clean"], requires_grad=True)
    ParametricMultiLoss(["reconstruction", "unsharp_mask"])(out, batch, torch.rand(2, 2)).loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("omega", "match"),
    [
        (torch.rand(3), r"shape \(2,\) or \(2, 2\)"),
        (torch.rand(3, 2), r"batch size 2"),
        (torch.rand(2, 2, 1), r"got \(2, 2, 1\)"),
        (torch.ones(2, 2, dtype=torch.long), "float tensor"),
    ],
)
def test_bad_omega_raises(batch, omega, match):
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
    with pytest.raises(ValueError, match=match):
        loss_fn(batch["clean"], batch, omega)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="unknown objective 'perceptual'"):
        ParametricMultiLoss(["reconstruction", "perceptual"])
    with pytest.raises(ValueError, match=r"weights \(λ\) has 3 entries for 2 objectives"):
        ParametricMultiLoss(["reconstruction", "noise_preservation"], weights=[1, 1, 1])
    with pytest.raises(ValueError, match="weight_by indices"):
        ParametricMultiLoss(["reconstruction"], weight_by=[1])
    with pytest.raises(ValueError, match="'name' key"):
        ParametricMultiLoss([{"nu": 0.9}])
    with pytest.raises(ValueError, match="empty"):
        ParametricMultiLoss([])
    with pytest.raises(ValueError, match="nu"):
        build_objective("noise_preservation", nu=1.5)


def test_objective_returning_wrong_shape_raises(batch):
    class Scalar(Objective):
        def forward(self, output, batch, omega, index):
            return output.mean()

    with pytest.raises(ValueError, match=r"expected \(B,\)"):
        ParametricMultiLoss([Scalar()])(batch["clean"], batch, torch.ones(1))


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):

        @register_objective("reconstruction")
        class Again(Objective):
            pass


class TinyTunable(torch.nn.Module):
    """Stand-in for a tunable network: a 1×1 conv whose output shifts with ω (the ``model(x, omega=)`` protocol)."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.mix = torch.nn.Linear(p, 3)

    def forward(self, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.mix(omega)[:, :, None, None]


def test_training_step_with_sampler_reduces_loss(batch):
    torch.manual_seed(0)
    model = TinyTunable(2)
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
    sampler = build_sampler("corner_biased", p=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    fixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    before = loss_fn(model(batch["input"], omega=fixed), batch, fixed).loss.item()
    for _ in range(30):
        omega = sampler(2, generator=g)
        loss = loss_fn(model(batch["input"], omega=omega), batch, omega).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_fn(model(batch["input"], omega=fixed), batch, fixed).loss.item() < before
