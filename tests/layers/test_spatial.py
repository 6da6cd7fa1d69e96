"""ω as an image: a map (B, p, H, W) gives every pixel its own ω."""

from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tunify
from tests.conftest import spread_copies
from tunify.convert import conversion_spec
from tunify.layers.omega import map_on_grid


def dncnn_like(depth: int = 4, width: int = 8) -> nn.Module:
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(width, 3, 3, padding=1))
    return nn.Sequential(*layers)


class UNetLike(nn.Module):
    """Strided, transposed, 1×1 and pooled-feature layers: every way a layer can change the grid."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 2, stride=2)
        self.mid = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.tail = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.head(x))
        return self.tail(h + self.up(torch.relu(self.mid(torch.relu(self.down(h))))))


def local_nafnet() -> nn.Module:
    """A small NAFNet from the zoo whose channel attention pools locally (the official "Local" variant).

    With the default global pooling every output pixel sees the whole image, so no region can be tuned
    apart from the others; local pooling keeps the receptive field finite.
    """
    net = tunify.zoo.create("nafnet_sidd_w32", width=8, enc_blk_nums=[1], middle_blk_num=1, dec_blk_nums=[1])
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(module, name, nn.AvgPool2d(5, stride=1, padding=2, count_include_pad=False))
    return net.eval()


def small_swinir() -> nn.Module:
    """SwinIR: every Linear layer follows a map, the MLPs per token and the attention per window."""
    return tunify.zoo.create("swinir_color_dn", embed_dim=12, depths=[2], num_heads=[2], window_size=4).eval()


def tunable(net: nn.Module, **kwargs) -> tunify.TunableModel:
    torch.manual_seed(0)
    return spread_copies(tunify.convert(net, 2, **kwargs), scale=0.5).eval()


@pytest.mark.parametrize("make", [dncnn_like, UNetLike])
def test_constant_map_is_the_shared_omega(make) -> None:
    tmodel = tunable(make())
    x = torch.randn(2, 3, 16, 16)
    omega = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        shared = tmodel(x, omega=omega)
        as_map = tmodel(x, omega=omega.view(2, 1, 1).expand(2, 16, 16))
        broadcast = tmodel(x, omega=omega.view(1, 2, 1, 1))
        # a constant map is run as its ω; one that requires grad stays per pixel: the per-pixel path
        per_pixel = tmodel(x, omega=omega.view(2, 1, 1).repeat(1, 16, 16).requires_grad_())
    torch.testing.assert_close(as_map, shared, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(broadcast, shared, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_pixel, shared, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [dncnn_like, UNetLike])
def test_inference_mixes_in_place_as_autograd_mixes(make) -> None:
    tmodel = tunable(make())
    x = torch.randn(2, 3, 16, 16)
    omega = torch.rand(2, 2, 16, 16)
    with torch.no_grad():
        in_place = tmodel(x, omega=omega)
    with torch.inference_mode():
        torch.testing.assert_close(tmodel(x, omega=omega), in_place)
    torch.testing.assert_close(tmodel(x, omega=omega).detach(), in_place, atol=1e-6, rtol=1e-5)


def test_a_bfloat16_network_keeps_its_dtype_under_a_float32_map() -> None:
    """Converting a bfloat16 network keeps φ in float32; the per-pixel α must not turn activations float32."""
    net = UNetLike()
    low = tunify.convert(copy.deepcopy(net).to(torch.bfloat16), 2).eval()
    reference = tunable(net)
    low.load_state_dict(reference.state_dict())  # the copies rounded to bfloat16, φ kept in float32
    assert low.base_model.head.phi.weight.dtype == torch.float32
    x = torch.randn(2, 3, 16, 16)
    omega = torch.rand(2, 2, 16, 16)
    with torch.no_grad():
        y = low(x.bfloat16(), omega=omega)
        expected = reference(x, omega=omega)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected, atol=0.1, rtol=0.05)


class MergesItsWeights(nn.Module):
    """Writes a weight computed from another layer's into a convolution at every call, as reparameterised
    blocks do (spandrel's SPAN merges three convolutions into ``eval_conv`` in eval mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Conv2d(3, 3, 3, padding=1)
        self.merged = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.merged.weight.data = self.branch.weight.data * 2
        return self.merged(x)


def test_a_network_that_reads_its_weights_takes_constant_maps_and_refuses_varying_ones() -> None:
    tmodel = tunable(MergesItsWeights())
    x = torch.randn(2, 3, 8, 8)
    rows = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    with torch.no_grad():
        expected = torch.cat([tmodel(x[i : i + 1], omega=rows[i]) for i in range(2)])
        torch.testing.assert_close(tmodel(x, omega=rows), expected, atol=1e-5, rtol=1e-5)
        constant = rows[:, :, None, None].expand(2, 2, 8, 8)
        torch.testing.assert_close(tmodel(x, omega=constant), expected, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match=r"Conv2d\.weight is read directly .* not a map"):
            tmodel(x[:1], omega=halves(rows[0], rows[1], 8))


class AsksItsWeightsDtype(nn.Module):
    """Reads a layer's weight only for its dtype and device, as timm's positional encodings (XCiT, EdgeNeXt)
    and many other modules do; optionally a Conv3d over the 2-D features (timm's lambda layers)."""

    def __init__(self, reads: bool, conv3d: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.reads = reads
        self.proj = nn.Conv2d(3, 4, 3, padding=1)
        self.depth = nn.Conv3d(1, 1, (1, 3, 3), padding=(0, 1, 1)) if conv3d else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reads:
            x = x.to(device=self.proj.weight.device, dtype=self.proj.weight.dtype)
        y = self.proj(x)
        return y if self.depth is None else self.depth(y.unsqueeze(1)).squeeze(1)


def test_reading_only_a_weights_dtype_keeps_per_sample_batched_and_maps_per_pixel() -> None:
    x = torch.randn(2, 3, 8, 8)
    rows = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    varying = torch.stack([halves(rows[0], rows[1], 8), halves(rows[1], rows[0], 8)])
    reads, plain = tunable(AsksItsWeightsDtype(True)), tunable(AsksItsWeightsDtype(False))
    one_at_a_time = AssertionError("fell back to running sample by sample")
    with torch.no_grad(), mock.patch("tunify.convert.model.vmap_over_samples", side_effect=one_at_a_time):
        torch.testing.assert_close(reads(x, omega=rows), plain(x, omega=rows))
        torch.testing.assert_close(reads(x, omega=varying), plain(x, omega=varying))


def test_a_conv3d_over_2d_features_takes_the_maps_average() -> None:
    tmodel = tunable(AsksItsWeightsDtype(False, conv3d=True))
    x = torch.randn(2, 3, 8, 8)
    rows = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    varying = torch.stack([halves(rows[0], rows[1], 8), halves(rows[1], rows[0], 8)])
    with torch.no_grad():
        per_pixel = tmodel(x, omega=varying)
        mean = varying.mean((2, 3))
        with mock.patch.object(tmodel.base_model.depth, "omega", return_value=mean):
            expected = tmodel(x, omega=varying)
    torch.testing.assert_close(per_pixel, expected)


def halves(a: torch.Tensor, b: torch.Tensor, size: int) -> torch.Tensor:
    omega = a.view(2, 1, 1).repeat(1, size, size)
    omega[:, :, size // 2 :] = b.view(2, 1, 1)
    return omega


@pytest.mark.parametrize(
    ("make", "kwargs", "margin"),
    [(dncnn_like, {}, 5), (local_nafnet, {"parameters": ["beta", "gamma"]}, 14), (small_swinir, {}, 10)],
    ids=["dncnn", "nafnet", "swinir"],
)
def test_half_and_half_map_is_each_omega_away_from_the_boundary(make, kwargs, margin) -> None:
    tmodel = tunable(make(), **kwargs)
    size = 32
    x = torch.rand(1, 3, size, size)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    with torch.no_grad():
        out_a, out_b = tmodel(x, omega=a), tmodel(x, omega=b)
        mixed = tmodel(x, omega=halves(a, b, size))
    left, right = size // 2 - margin, size // 2 + margin
    assert (out_a - out_b)[..., :left].abs().max() > 1e-2  # the two ω really differ there
    torch.testing.assert_close(mixed[..., :left], out_a[..., :left], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[..., right:], out_b[..., right:], atol=1e-5, rtol=1e-5)


def test_per_sample_maps_in_one_batch_and_report() -> None:
    tmodel = tunable(UNetLike())
    x = torch.randn(3, 3, 16, 16)
    maps = torch.rand(3, 2, 16, 16)
    with torch.no_grad():
        together = tmodel(x, omega=maps)
        alone = torch.cat([tmodel(x[i : i + 1], omega=maps[i]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert {row.spatial for row in tmodel.conversion_report()} == {"per pixel"}


def test_layers_without_a_grid_take_the_maps_average() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    tmodel = tunable(net)
    x = torch.randn(2, 3, 8, 8)
    maps = torch.rand(2, 2, 1, 1).expand(2, 2, 8, 8)
    with torch.no_grad():
        per_pixel = maps.clone().requires_grad_()  # stays a map (a constant one is run as its ω)
        torch.testing.assert_close(
            tmodel(x, omega=per_pixel), tmodel(x, omega=maps[:, :, 0, 0]), atol=1e-5, rtol=0
        )
    report = {row.name: row.spatial for row in tmodel.conversion_report()}
    assert report == {"0": "per pixel", "2": "per token"}  # per token where its input holds the grid's tokens
    spec = conversion_spec(tmodel)  # what `tunify info` prints
    assert (spec["map_averaged"], spec["map_per_token"]) == ([], ["2"])


def same_convolutions_at_every_omega(tmodel: tunify.TunableModel) -> tunify.TunableModel:
    """Give the convolutions ``embed`` and ``out`` equal copies: they still note the grid, and only the Linear
    layers between them depend on ω."""
    with torch.no_grad():
        for conv in (tmodel.base_model.embed, tmodel.base_model.out):
            for bank in conv.source.parameters():
                bank.copy_(bank[:1].expand_as(bank))
    return tmodel


class Tokens(nn.Module):
    """A 1×1 convolution, its pixels as tokens through an MLP of Linear layers, and back: every layer works
    pixel by pixel. ``layout``: raster tokens (B, H·W, C) as SwinIR's, channels-last (B, H, W, C) as
    ConvNeXt's, or raster tokens behind a class token (no longer the grid's tokens)."""

    def __init__(self, layout: str) -> None:
        super().__init__()
        self.layout = layout
        self.embed = nn.Conv2d(3, 8, 1)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        b, c, height, width = h.shape
        if self.layout == "channels_last":
            return self.out(self.fc2(torch.relu(self.fc1(h.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2))
        tokens = h.flatten(2).transpose(1, 2)
        if self.layout == "class_token":
            tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        tokens = self.fc2(torch.relu(self.fc1(tokens)))[:, -height * width :]
        return self.out(tokens.transpose(1, 2).reshape(b, c, height, width))


@pytest.mark.parametrize(
    ("layout", "kwargs"),
    [
        ("raster", {}),
        ("channels_last", {}),
        ("raster", {"independent": True}),
        ("raster", {"strategy": "lowrank", "rank": 2}),
        ("channels_last", {"strategy": "atoms"}),
        ("raster", {"strategy": "ftn", "independent": True}),
    ],
)
def test_linear_layers_on_the_grids_tokens_follow_the_map_per_pixel(layout, kwargs) -> None:
    tmodel = tunable(Tokens(layout), **kwargs)
    with torch.no_grad():  # low-rank and atom deltas start at zero, which spread_copies leaves alone
        for param in tmodel.parameters():
            param.add_(0.1 * torch.randn_like(param))
    x = torch.rand(2, 3, 6, 5)
    rows = torch.rand(3, 2)  # every pixel takes one of three ω
    choice = torch.randint(3, (2, 6, 5))
    maps = rows[choice].permute(0, 3, 1, 2)  # (B, p, H, W)
    with torch.no_grad():
        each = [tmodel(x, omega=row) for row in rows]
        assert (each[0] - each[1]).abs().max() > 1e-3  # the copies differ: ω moves the output
        expected = sum((choice == k).unsqueeze(1) * each[k] for k in range(3))
        torch.testing.assert_close(tmodel(x, omega=maps), expected, atol=1e-5, rtol=1e-5)
    omega = maps.clone().requires_grad_()
    tmodel(x, omega=omega).square().mean().backward()
    assert omega.grad.abs().sum(1).gt(0).all()  # the Linear layers' α reach every pixel's ω
    one_by_one = rows[:2, :, None, None].clone().requires_grad_()  # stays a map: broadcast per sample
    torch.testing.assert_close(tmodel(x, omega=one_by_one), tmodel(x, omega=rows[:2]), atol=1e-5, rtol=1e-5)


class Windows(nn.Module):
    """A Swin-style block reduced to its layout: shift, cut into windows folded into the batch (SCUNet: kept
    in dimension 1), a Linear layer per token, and back. It names its window and shift as ``declares`` says:
    ``window_size`` (Swin), ``win_size`` (Uformer), ``type`` (SCUNet: "SW" shifts half a window), or None."""

    def __init__(
        self,
        window: int | tuple[int, int],
        shift: int | tuple[int, int],
        declares: str | None = "window_size",
    ) -> None:
        super().__init__()
        self.size, self.shift = (window, window) if isinstance(window, int) else window, shift
        self.folded = declares != "type"
        if declares == "type":
            self.window_size, self.type = window, "SW" if shift else "W"
        elif declares:
            setattr(self, declares, window)
            self.shift_size = shift
        self.embed, self.fc, self.out = nn.Conv2d(3, 8, 1), nn.Linear(8, 8), nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        b, height, width, c = h.shape
        (wh, ww), shift = self.size, (self.shift, self.shift) if isinstance(self.shift, int) else self.shift
        h = torch.roll(h, (-shift[0], -shift[1]), (1, 2))
        windows = h.reshape(b, height // wh, wh, width // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
        shape = (-1, wh * ww, c) if self.folded else (b, -1, wh * ww, c)
        windows = self.fc(windows.reshape(shape))
        h = windows.reshape(b, height // wh, width // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        h = torch.roll(h.reshape(b, height, width, c), shift, (1, 2))
        return self.out(h.permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("window", "shift", "declares"),
    [
        (4, 0, "window_size"),
        (4, 2, "window_size"),
        ((2, 4), (1, 2), "window_size"),
        (4, 2, "win_size"),
        (4, 2, "type"),
    ],
)
def test_linear_layers_in_windows_follow_the_map_per_pixel(window, shift, declares) -> None:
    tmodel = tunable(Windows(window, shift, declares))
    x = torch.rand(2, 3, 8, 12)
    rows = torch.rand(3, 2)
    choice = torch.randint(3, (2, 8, 12))
    maps = rows[choice].permute(0, 3, 1, 2)
    with torch.no_grad():
        each = [tmodel(x, omega=row) for row in rows]
        expected = sum((choice == k).unsqueeze(1) * each[k] for k in range(3))
        torch.testing.assert_close(tmodel(x, omega=maps), expected, atol=1e-5, rtol=1e-5)
        one_by_one = rows[:2, :, None, None].clone().requires_grad_()  # stays a map: broadcast per sample
        torch.testing.assert_close(
            tmodel(x, omega=one_by_one), tmodel(x, omega=rows[:2]), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize(
    ("window", "shift", "declares", "size"),
    [(4, 2, None, (8, 12)), (4, 2, "window_size", (4, 4)), (2, 1, "type", (4, 4))],
    # one shifted window, or SCUNet's windows × window pixels shaped as the image (4 × 4 windows of 2 × 2):
    # the layer cannot tell them from the image's own tokens
    ids=["undeclared", "one-shifted-window", "windows-shaped-as-the-image"],
)
def test_windows_the_map_cannot_follow_take_each_images_average(window, shift, declares, size) -> None:
    tmodel = same_convolutions_at_every_omega(tunable(Windows(window, shift, declares=declares)))
    with torch.no_grad():
        x, maps = torch.rand(2, 3, *size), torch.rand(2, 2, *size)
        torch.testing.assert_close(tmodel(x, omega=maps), tmodel(x, omega=maps.mean((2, 3))))


def test_linear_layers_on_other_tokens_take_the_maps_average() -> None:
    tmodel = same_convolutions_at_every_omega(tunable(Tokens("class_token")))
    with torch.no_grad():
        x = torch.rand(2, 3, 6, 5)
        maps = torch.rand(2, 2, 6, 5)
        torch.testing.assert_close(tmodel(x, omega=maps), tmodel(x, omega=maps.mean((2, 3))))
        assert not torch.allclose(tmodel(x, omega=maps), tmodel(x, omega=maps[:, :, 0, 0]), atol=1e-3)


class FoldsPatches(nn.Module):
    """Cuts the image into 4×4 patches folded into the batch around a convolution (as spandrel's DITN)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 4, 3, padding=1)
        self.inside = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = torch.relu(self.head(x))
        patches = h.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4, 4, 4)
        y = self.inside(patches).reshape(b, h.shape[2] // 4, h.shape[3] // 4, 4, 4, 4)
        return y.permute(0, 3, 1, 4, 2, 5).reshape(b, 4, h.shape[2], h.shape[3])


def test_a_layer_on_patches_folded_into_the_batch_takes_each_maps_average() -> None:
    tmodel = tunable(FoldsPatches())
    x = torch.randn(2, 3, 8, 8)
    rows = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    with torch.no_grad():
        per_pixel = rows[:, :, None, None].repeat(1, 1, 8, 8).requires_grad_()  # stays a map
        torch.testing.assert_close(tmodel(x, omega=per_pixel), tmodel(x, omega=rows), atol=1e-5, rtol=1e-5)
        one_map = halves(rows[0], rows[1], 8)  # (p, H, W): one map for the whole batch
        expected = torch.cat([tmodel(x[i : i + 1], omega=one_map) for i in range(2)])
        torch.testing.assert_close(tmodel(x, omega=one_map), expected, atol=1e-5, rtol=1e-5)


def test_gradients_reach_the_map() -> None:
    tmodel = tunable(UNetLike())
    x = torch.randn(1, 3, 16, 16)
    omega = torch.full((1, 2, 16, 16), 0.5, requires_grad=True)
    tmodel(x, omega=omega).square().mean().backward()
    assert omega.grad is not None and omega.grad.abs().sum(1).gt(0).float().mean() > 0.9


def test_map_of_the_wrong_size_is_refused() -> None:
    tmodel = tunable(dncnn_like())
    with pytest.raises(ValueError, match=r"omega map has spatial size \(8, 8\), the input has \(16, 16\)"):
        tmodel(torch.randn(1, 3, 16, 16), omega=torch.rand(1, 2, 8, 8))


@pytest.mark.parametrize(("grid", "size"), [((40, 40), (42, 116)), ((7,), (15,)), ((16, 9), (37, 9))])
def test_maps_upsample_to_the_nearest_pixel_in_integer_arithmetic(grid, size) -> None:
    """Pixel i of the layer's grid reads pixel ⌊i·grid/size⌋ of the map, at every size (ONNX's Resize, with
    a float scale, lands one pixel off at some)."""
    omega_map = torch.rand(1, 2, *grid)
    resampled = map_on_grid(omega_map, size)
    expected = omega_map
    for dim, (g, s) in enumerate(zip(grid, size, strict=True)):
        expected = expected.index_select(2 + dim, torch.tensor([i * g // s for i in range(s)]))
    assert torch.equal(resampled, expected)


@pytest.mark.parametrize(("grid", "size"), [((37, 40), (35, 20)), ((16,), (5,)), ((9, 8, 7), (4, 8, 3))])
def test_maps_downsample_by_area_also_while_exported(grid, size) -> None:
    """Exported graphs average with products (ONNX's adaptive pooling keeps the trace's sizes); both ways
    give adaptive average pooling."""
    omega_map = torch.rand(2, 2, *grid)
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
    torch.testing.assert_close(map_on_grid(omega_map, size), pool(omega_map, size))
    with mock.patch.object(torch.compiler, "is_exporting", return_value=True):
        torch.testing.assert_close(map_on_grid(omega_map, size), pool(omega_map, size))
