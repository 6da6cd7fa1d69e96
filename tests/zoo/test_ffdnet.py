"""FFDNet: the authors' bare conv stack is recognised, runs as their demo does, and converts, saves and exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import tunify
from tests.conftest import spread_copies
from tunify import zoo
from tunify.data import read_image
from tunify.evaluate import psnr
from tunify.export.program import example_input
from tunify.zoo.ffdnet import FFDNet

OFFSETS = [
    (0, 0),
    (1, 0),
    (0, 1),
    (1, 1),
]  # sub-image k: (row, column) offset, as the authors' demo orders them


def _stack(channels: int, width: int = 8, depth: int = 4) -> nn.Sequential:
    sizes = [4 * channels + 1] + [width] * (depth - 1) + [4 * channels]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(sizes[i], sizes[i + 1], 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _reference(body: nn.Sequential, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The authors' demo, sub-image by sub-image: odd sizes repeat the last row/column, cropped back after."""
    h, w = x.shape[-2:]
    x = torch.cat([x, x[..., -1:, :]], -2) if h % 2 else x
    x = torch.cat([x, x[..., -1:]], -1) if w % 2 else x
    b, c = x.shape[:2]
    subs = torch.stack([x[:, :, a::2, o::2] for a, o in OFFSETS], 2).flatten(1, 2)
    with torch.no_grad():
        y = body(torch.cat([subs, torch.full_like(subs[:, :1], sigma / 255)], 1)).view(
            b, c, 4, *subs.shape[-2:]
        )
    out = x.new_zeros(b, c, *x.shape[-2:])
    for k, (a, o) in enumerate(OFFSETS):
        out[:, :, a::2, o::2] = y[:, :, k]
    return out[..., :h, :w]


@pytest.mark.parametrize("channels", [1, 3])
def test_bare_ffdnet_stack_loads_and_runs_as_the_authors_demo(tmp_path: Path, channels: int) -> None:
    torch.manual_seed(0)
    body = _stack(channels)
    torch.save(body.state_dict(), tmp_path / "ffdnet.pth")
    net = zoo.load(tmp_path / "ffdnet.pth")
    assert isinstance(net, FFDNet) and not net.training
    kwargs = {"in_nc": channels, "nc": 8, "nb": 4, "noise_level": 25.0}
    assert zoo.describe(net) == {"architecture": "tunify:FFDNet", "kwargs": kwargs}
    for size in [(12, 16), (13, 17)]:  # even, and odd (repeated last row and column)
        x = torch.rand(2, channels, *size)
        with torch.no_grad():
            torch.testing.assert_close(net(x), _reference(body, x, 25.0))
            torch.testing.assert_close(
                net(x, sigma=torch.tensor([5.0, 50.0]))[1:], _reference(body, x[1:], 50.0)
            )
    net.noise_level = 15.0
    assert zoo.describe(net)["kwargs"]["noise_level"] == 15.0  # the spec follows the network as it stands
    rebuilt = zoo.build(zoo.describe(net))
    assert isinstance(rebuilt, FFDNet) and rebuilt.noise_level == 15.0


def test_unknown_own_architecture_is_named() -> None:
    with pytest.raises(zoo.ZooError, match=r"no architecture 'tunify:Nope'.*FFDNet"):
        zoo.build({"architecture": "tunify:Nope", "kwargs": {}})
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        zoo.build({"architecture": "tunify:FFDNet", "kwargs": {"width": 3}})


def test_tunable_ffdnet_round_trips_and_exports_with_image_channels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = zoo.load(_stack(3).state_dict())
    tmodel = spread_copies(tunify.convert(net, 2))
    x, omega = torch.rand(2, 3, 11, 14), torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    tmodel.save_pretrained(tmp_path / "saved")
    again = tunify.from_pretrained(tmp_path / "saved")  # built from the recorded spec, no model= needed
    with torch.no_grad():
        expected = tmodel(x, omega=omega)
        torch.testing.assert_close(again(x, omega=omega), expected)
        torch.testing.assert_close(tunify.bake(tmodel, omega[1])(x[1:]), expected[1:], atol=1e-6, rtol=1e-5)
    assert example_input(tmodel).shape[1] == 3  # not the 13 of its first convolution


def test_export_example_of_a_network_that_folds_pixel_blocks_first() -> None:
    """Real-ESRGAN ×2 pixel-unshuffles its input: its first convolution takes 12 channels, images have 3."""
    from spandrel.architectures.ESRGAN import ESRGAN

    net = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=2, shuffle_factor=2).eval()
    assert example_input(tunify.convert(net, 2)).shape[1] == 3


@pytest.mark.slow
def test_real_ffdnet_matches_its_provenance(shared: Path) -> None:
    """PROVENANCE.md: kodim01, σ = 25 (numpy default_rng(0), unclipped), noise map 25/255: 29.68 dB."""
    net = zoo.load(shared / "pretrained/FFDNet_color/ffdnet_color.pth")
    clean = read_image(shared / "datasets/Kodak24/kodim01.png")
    x = clean.permute(1, 2, 0).double().numpy()
    noisy = x + (25 / 255) * np.random.default_rng(0).standard_normal(x.shape)
    noisy = torch.from_numpy(noisy.transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        assert psnr(net(noisy), clean[None]).item() == pytest.approx(29.68, abs=0.01)
