"""Independent ω entries (``independent=True``): p + 1 copies, so every corner of [0, 1]^p is its own network."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import tunify
from tests.conftest import spread_copies
from tunify.layers.reader import make_phi

CORNERS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


class Net(nn.Module):
    """A conv, a per-channel scale (tunable tensor), attention and a linear head: every kind of tunable part."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.rand(1, 8, 1, 1) + 0.5)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (self.conv(x) * self.scale).flatten(2).transpose(1, 2)  # [B, HW, 8]
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(h)


def converted(seed: int = 0) -> tuple[nn.Module, tunify.TunableModel]:
    torch.manual_seed(seed)
    net = Net().eval()
    return net, tunify.convert(copy.deepcopy(net), 2, parameters=["scale"], independent=True).eval()


def test_phi_starts_as_a_base_copy_plus_one_per_entry() -> None:
    phi = make_phi(2, 3)
    omega = torch.tensor([[0.3, 0.9], [0.0, 0.0], [1.0, 1.0]])
    expected = torch.tensor([[0.3, 0.9, -0.2], [0.0, 0.0, 1.0], [1.0, 1.0, -1.0]])
    torch.testing.assert_close(phi(omega), expected)
    with pytest.raises(ValueError, match=r"kernels must be p \(2\) or p \+ 1 \(3\), got 4"):
        make_phi(2, 4)


def test_fresh_conversion_reproduces_the_network_on_the_whole_cube() -> None:
    net, tmodel = converted()
    x = torch.randn(4, 3, 6, 6)
    assert tmodel.config.kernels == 3
    assert {"conv.weight.2", "head.bias.2", "parametrizations.scale.original2"} <= set(
        tmodel.base_model.state_dict()
    )
    with torch.no_grad():
        reference = net(x)
        torch.testing.assert_close(tmodel(x, omega=CORNERS), reference, rtol=1e-5, atol=1e-5)
        for omega in torch.rand(3, 2):
            torch.testing.assert_close(tmodel(x, omega=omega), reference, rtol=1e-5, atol=1e-5)


def test_every_corner_is_a_different_network() -> None:
    """With p copies (Σα = 1) ω = (0, 0) and (1, 1) coincide; with a base copy they do not."""
    x = torch.randn(1, 3, 6, 6)
    torch.manual_seed(0)
    simplex = spread_copies(tunify.convert(Net(), 2), scale=0.5).eval()
    _, cube = converted()
    spread_copies(cube, scale=0.5)
    with torch.no_grad():
        same = [simplex(x, omega=w) for w in CORNERS]
        outs = [cube(x, omega=w) for w in CORNERS]
        per_sample = cube(x.expand(4, -1, -1, -1), omega=CORNERS)
    torch.testing.assert_close(same[0], same[3])
    for i in range(4):
        torch.testing.assert_close(per_sample[i : i + 1], outs[i], rtol=1e-5, atol=1e-5)
        for j in range(i):
            assert not torch.allclose(outs[i], outs[j], atol=1e-4), (CORNERS[i], CORNERS[j])


def test_save_load_bake_and_anchor_keep_the_base_copy(tmp_path: Path) -> None:
    net, tmodel = converted()
    spread_copies(tmodel, scale=0.5)
    x, omega = torch.randn(2, 3, 6, 6), torch.tensor([1.0, 1.0])
    tunify.save(tmodel, tmp_path / "m.safetensors")
    loaded = tunify.load(Net(), tmp_path / "m.safetensors").eval()
    assert loaded.config.independent and loaded.config.kernels == 3
    with torch.no_grad():
        expected = tmodel(x, omega=omega)
        torch.testing.assert_close(loaded(x, omega=omega), expected)
        torch.testing.assert_close(tunify.bake(tmodel, omega)(x), expected, rtol=1e-5, atol=1e-5)

    _, fresh = converted()
    tunify.anchor(fresh, 2)  # the base copy: ω = (0, 0) stays the pretrained network
    trainable = [p for p in fresh.parameters() if p.requires_grad]
    torch.optim.SGD(trainable, lr=0.1).zero_grad()
    fresh.train()
    fresh(x, omega=torch.rand(2, 2)).square().mean().backward()
    torch.optim.SGD(trainable, lr=0.1).step()
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x, omega=torch.zeros(2)), net(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(fresh(x, omega=torch.ones(2)), net(x), atol=1e-4)
    with pytest.raises(ValueError, match=r"anchor index must be in \[0, 2\], got 3"):
        tunify.anchor(fresh, 3)
