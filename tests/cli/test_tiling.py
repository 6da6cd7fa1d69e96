"""tiled_forward equals the untiled forward for convolutional networks, at scale 1 and for SR."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tunify
from tunify.inference import tiled_forward


def _tunable(net: nn.Module) -> tunify.TunableModel:
    torch.manual_seed(0)
    tmodel = tunify.convert(net, p=2).eval()
    with torch.no_grad():
        for param in tmodel.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return tmodel


def _spatial_map() -> torch.Tensor:
    """A spatial ω map (2, 2, 70, 53): each pixel either (1, 0) or (0, 1), so tiles must cut it right."""
    w = torch.rand(2, 1, 70, 53, generator=torch.Generator().manual_seed(0)).round()
    return torch.cat([w, 1 - w], dim=1)


@pytest.mark.parametrize(
    "omega",
    [torch.tensor([0.2, 0.8]), torch.tensor([[0.1, 0.9], [0.7, 0.3]]), _spatial_map()],
    ids=["shared", "per-sample", "spatial-map"],
)
def test_tiled_equals_untiled(omega: torch.Tensor) -> None:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, padding=1),
    )
    tmodel = _tunable(net)
    x = torch.rand(2, 3, 70, 53)
    with torch.no_grad():
        ref = tmodel(x, omega=omega)
    y = tiled_forward(tmodel, x, omega, tile=24, overlap=12, progress=False)  # margin 3 = receptive radius
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_tiled_super_resolution() -> None:
    tmodel = _tunable(nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)))
    x = torch.rand(1, 3, 45, 61)
    omega = torch.tensor([0.6, 0.4])
    with torch.no_grad():
        ref = tmodel(x, omega=omega)
    y = tiled_forward(tmodel, x, omega, tile=20, overlap=8, progress=False)
    assert y.shape == (1, 3, 90, 122)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_bad_tile_settings() -> None:
    with pytest.raises(ValueError, match="overlap"):
        tiled_forward(lambda x, omega: x, torch.rand(1, 3, 8, 8), torch.tensor([0.5]), tile=16, overlap=9)


def test_convolutional_networks_run_channels_last_with_the_same_result() -> None:
    """network_input: a copy, channels-last for conv-only networks on the CPU, as given when there is a Linear."""
    from tunify.inference import network_input

    convnet = _tunable(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)))
    x = torch.rand(2, 3, 20, 24)
    assert network_input(convnet, x).is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = convnet(x, omega=torch.tensor([0.3, 0.7]))
    y = tiled_forward(convnet, x, torch.tensor([0.3, 0.7]), tile=16, overlap=4, progress=False)
    assert y.is_contiguous()
    torch.testing.assert_close(tiled_forward(convnet, x, torch.tensor([0.3, 0.7]), progress=False), expected)

    class WithLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.mix = nn.Conv2d(3, 3, 1), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mix(self.conv(x).movedim(1, -1)).movedim(-1, 1)

    copy = network_input(WithLinear(), x)
    assert copy.is_contiguous() and copy.data_ptr() != x.data_ptr()
    torch.testing.assert_close(copy, x, atol=0, rtol=0)
    single = x[0]
    assert network_input(convnet, single).is_contiguous()  # not an image batch: a plain copy


def test_a_greyscale_network_runs_colour_images_channel_by_channel(tmp_path) -> None:
    """`tunify apply` and the app fed RGB to one-channel networks (grey DnCNN, DRUNet, SwinIR denoisers)."""
    from PIL import Image

    from tunify.cli import main
    from tunify.data import read_image
    from tunify.inference import PerChannel, for_images

    torch.manual_seed(2)
    grey = _tunable(
        tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 1, "out_nc": 1, "nc": 4, "nb": 2}})
    )
    x, omega = torch.rand(2, 3, 20, 24), torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    runner = for_images(grey, x, omega)
    assert isinstance(runner, PerChannel) and not isinstance(
        for_images(_tunable(nn.Conv2d(3, 3, 1)), x, omega), PerChannel
    )
    with torch.no_grad():
        y = runner(x, omega=omega)
        for b in range(2):
            for c in range(3):
                alone = grey(x[b : b + 1, c : c + 1], omega=omega[b])
                torch.testing.assert_close(y[b : b + 1, c : c + 1], alone, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(runner(x[:, :1].expand(-1, 3, -1, -1), omega=omega)[:, 2:], y[:, :1])

    grey.save_pretrained(tmp_path / "grey")
    for name, pixels in (("colour", x[0]), ("grey", x[0, :1])):
        Image.fromarray((pixels.permute(1, 2, 0).squeeze(2).numpy() * 255).round().astype("uint8")).save(
            tmp_path / f"{name}.png"
        )
        out = tmp_path / f"{name}_out.png"
        args = [
            "apply",
            str(tmp_path / f"{name}.png"),
            "--model",
            str(tmp_path / "grey"),
            "--omega",
            "0.2,0.8",
        ]
        assert main([*args, "-o", str(out), "--no-progress"]) == 0
        written = read_image(out, gray_to_rgb=False)
        assert written.shape[0] == pixels.shape[0]  # colour stays colour, grey stays grey
        with torch.no_grad():
            expected = runner(read_image(tmp_path / f"{name}.png")[None], omega=omega[0])[
                0, : pixels.shape[0]
            ]
        assert (written - expected.clamp(0, 1)).abs().max() <= 1 / 255 + 1e-6


class _ScalesItsInput(nn.Module):
    """Writes into its input, as spandrel's RCAN does (``x *= rgb_range``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x *= 255.0
        return self.conv(x) / 255.0


def test_a_network_that_writes_into_its_input_tiles_as_it_runs_whole() -> None:
    """Each tile was a view of the picture: the network scaled the overlap that the next tile then read
    (RCAN's tiled output was 1e9 off); the probes of the scale and the colour mode did the same."""
    tmodel = _tunable(_ScalesItsInput())
    x, omega = torch.rand(1, 3, 40, 40), torch.tensor([0.3, 0.7])
    before = x.clone()
    with torch.inference_mode():
        whole = tmodel(x.clone(), omega=omega)
    tiled = tiled_forward(tmodel, x, omega, tile=16, overlap=8, progress=False)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(x, before, atol=0, rtol=0)


def _deep(layers: int, upscale: int = 1) -> tunify.TunableModel:
    """3×3 convolutions that each move the picture one pixel right (plus small random taps), so the output
    depends on inputs exactly ``layers`` pixels away, at full strength: a known receptive-field radius."""
    torch.manual_seed(0)
    convs: list[nn.Module] = []
    for i in range(layers):
        out = 3 * upscale**2 if i == layers - 1 else 3
        conv = nn.Conv2d(3, out, 3, padding=1)
        with torch.no_grad():
            conv.weight.mul_(0.1)
            conv.weight[:, :, 1, 0] += torch.eye(3).repeat_interleave(out // 3, dim=0)
        convs.append(conv)
    return _tunable(nn.Sequential(*convs, nn.PixelShuffle(upscale)))


@pytest.mark.parametrize("upscale", [1, 2])
def test_influence_radius_is_the_receptive_field_of_a_conv_stack(upscale: int) -> None:
    from tunify.inference import auto_overlap, influence_radius

    x, omega = torch.rand(1, 3, 64, 64), torch.tensor([0.3, 0.7])
    assert influence_radius(_deep(6, upscale), x, omega, size=48, scale=upscale) == 6  # six 3×3 layers
    assert auto_overlap(_deep(6, upscale), x, omega, tile=128) == 24
    assert auto_overlap(_deep(6, upscale), x, omega, tile=32) == 16  # at most half the tile


def test_a_network_that_pools_the_whole_image_gets_a_quarter_of_the_tile() -> None:
    from tunify.inference import auto_overlap, influence_radius

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + x.mean(dim=(2, 3), keepdim=True)  # every pixel sees the whole picture

    tmodel, x, omega = _tunable(Pooled()), torch.rand(1, 3, 64, 64), torch.tensor([0.5, 0.5])
    assert influence_radius(tmodel, x, omega, size=32) is None
    assert auto_overlap(tmodel, x, omega, tile=64) == 16


def test_the_default_overlap_is_measured_and_seamless() -> None:
    """A fixed 8-pixel overlap (2-pixel margin) leaves seams for a 6-layer network; 'auto' measures 24."""
    tmodel, omega = _deep(6), torch.tensor([0.3, 0.7])
    x = torch.rand(1, 3, 90, 150)
    with torch.no_grad():
        whole = tmodel(x, omega=omega)
    fixed = tiled_forward(tmodel, x, omega, tile=64, overlap=8, progress=False)
    assert (fixed - whole).abs().max() > 1e-2
    measured = tiled_forward(tmodel, x, omega, tile=64, progress=False)
    torch.testing.assert_close(measured, whole, atol=1e-5, rtol=0)
