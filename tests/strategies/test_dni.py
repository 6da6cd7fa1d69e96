"""DNI as a tunable network: one-hot ω gives each network, other ω the blended weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tunify
from tunify.strategies import dni


class Scaled(nn.Module):
    """A conv net with a plain tensor parameter used in forward (reaches the TunableTensor path)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gain = nn.Parameter(torch.ones(1, 4, 1, 1))
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.conv(x)) * self.gain)


def _net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def _perturbed(model: nn.Module, seed: int) -> nn.Module:
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=g))
    return other


def _averaged(models: list[nn.Module], weights: list[float]) -> nn.Module:
    blended = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    blended.load_state_dict(
        {k: sum(w * s[k] for w, s in zip(weights, states, strict=True)) for k in states[0]}
    )
    return blended


def test_one_hot_omega_is_each_network_exactly() -> None:
    parent = _net(0)
    models = [_perturbed(parent, 1), _perturbed(parent, 2), _perturbed(parent, 3)]
    interp = dni(models)
    x = torch.rand(2, 3, 12, 12)
    assert interp.p == 3
    for i, model in enumerate(models):
        omega = torch.eye(3)[i]
        assert torch.equal(interp(x, omega=omega), model(x))
        baked = tunify.bake(interp, omega).state_dict()
        assert all(torch.equal(baked[k], v) for k, v in model.state_dict().items())


def test_intermediate_omega_is_the_weight_average() -> None:
    models = [_perturbed(_net(0), 1), _perturbed(_net(0), 2)]
    interp = dni(models)
    x = torch.rand(3, 3, 12, 12)
    torch.testing.assert_close(interp(x, omega=torch.tensor([0.5, 0.5])), _averaged(models, [0.5, 0.5])(x))
    torch.testing.assert_close(
        interp(x, omega=torch.tensor([0.25, 0.75])), _averaged(models, [0.25, 0.75])(x)
    )


def test_per_sample_omega_matches_shared_rows() -> None:
    interp = dni([_perturbed(_net(0), 1), _perturbed(_net(0), 2)])
    x = torch.rand(3, 3, 10, 10)
    omega = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    rows = torch.cat([interp(x[i : i + 1], omega=omega[i]) for i in range(3)])
    torch.testing.assert_close(interp(x, omega=omega), rows)


def test_inputs_are_left_unchanged_and_phi_is_identity() -> None:
    models = [_perturbed(_net(0), 1), _perturbed(_net(0), 2)]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    interp = dni(models)
    for m, state in zip(models, before, strict=True):
        assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
        assert not isinstance(m[0], tunify.layers.TunableLayer)
    phis = [m.phi for m in interp.modules() if isinstance(m, tunify.layers.TunableLayer)]
    assert phis and all(torch.equal(phi.weight, torch.eye(2)) and not phi.bias.any() for phi in phis)
    assert interp.info["strategy"] == "dni"


def test_plain_tensor_parameters_are_interpolated() -> None:
    models = [_perturbed(Scaled(), 1), _perturbed(Scaled(), 2)]
    interp = dni(models, parameters=["gain"])
    x = torch.rand(2, 3, 8, 8)
    for i, model in enumerate(models):
        torch.testing.assert_close(interp(x, omega=torch.eye(2)[i]), model(x), rtol=0, atol=0)
    torch.testing.assert_close(interp(x, omega=torch.tensor([0.5, 0.5])), _averaged(models, [0.5, 0.5])(x))


def test_save_and_load_round_trip(tmp_path) -> None:
    models = [_perturbed(_net(0), 1), _perturbed(_net(0), 2)]
    interp = dni(models)
    tunify.save(interp, tmp_path / "dni.safetensors")
    loaded = tunify.load(_net(5), tmp_path / "dni.safetensors")
    x = torch.rand(1, 3, 8, 8)
    omega = torch.tensor([0.4, 0.6])
    torch.testing.assert_close(loaded(x, omega=omega), interp(x, omega=omega))


def test_rejects_one_network() -> None:
    with pytest.raises(ValueError, match="at least two"):
        dni([_net(0)])


def test_rejects_different_architectures() -> None:
    other = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    with pytest.raises(ValueError, match="architecture"):
        dni([_net(0), other])


def test_rejects_differing_tensors_left_out_of_the_conversion() -> None:
    models = [_perturbed(_net(0), 1), _perturbed(_net(0), 2)]
    with pytest.raises(ValueError, match="not converted"):
        dni(models, exclude=["2"])
    models[1][2].load_state_dict(models[0][2].state_dict())
    interp = dni(models, exclude=["2"])
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(interp(x, omega=torch.tensor([0.0, 1.0])), models[1](x))
