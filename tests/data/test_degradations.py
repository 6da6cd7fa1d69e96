from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunify.data import (
    BicubicDownsample,
    GaussianBlur,
    GaussianNoise,
    bicubic_downsample,
    build_degradation,
    degradation_names,
    gaussian_blur,
    gaussian_kernel2d,
    read_image,
    to_uint8,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "noise", "sigma": [5, 30]},
        {"name": "blur", "rho": [0, 4]},
        {"name": "blur_noise", "rho": [0.5, 3], "sigma": 15},
        [{"name": "downsample", "scale": 2}, {"name": "noise", "sigma": 10}],
    ],
)
def test_reproducible_with_a_seed_and_rebuildable_from_config(cfg: object) -> None:
    deg = build_degradation(cfg)
    x = torch.rand(3, 3, 24, 24, generator=_gen(9))
    y1, p1 = deg(x, _gen(1))
    y2, p2 = deg(x, _gen(1))
    y3, _ = build_degradation(deg.to_config())(x, _gen(1))
    assert torch.equal(y1, y2) and torch.equal(y1, y3)
    assert p1.keys() == p2.keys() and all(torch.equal(p1[k], p2[k]) for k in p1)
    assert all(v.shape == ((3,) if k != "noise" else y1.shape) for k, v in p1.items())
    if "noise" in str(deg) or "blur(rho=[" in str(deg):
        assert not torch.equal(y1, deg(x, _gen(2))[0])


def test_noise_std_matches_sigma_on_a_constant_image() -> None:
    x = torch.full((2, 3, 256, 256), 0.5)
    y, params = GaussianNoise(sigma=25)(x, _gen())
    assert params["sigma"].tolist() == [25.0, 25.0]
    assert abs((y - x).std().item() - 25 / 255) < 0.002
    assert abs((y - x).mean().item()) < 0.001
    bright = torch.full((1, 3, 64, 64), 0.95)
    assert GaussianNoise(sigma=25)(bright, _gen())[0].max() > 1  # unclipped by default, like DnCNN's protocol
    yc, _ = GaussianNoise(sigma=25, clip=True)(bright, _gen())
    assert yc.min() >= 0 and yc.max() <= 1


def test_noise_sigma_is_drawn_per_sample_in_range_and_used() -> None:
    x = torch.full((64, 3, 32, 32), 0.5)
    y, params = GaussianNoise(sigma=(5, 30))(x, _gen(3))
    sigma = params["sigma"]
    assert sigma.min() >= 5 and sigma.max() <= 30 and sigma.std() > 3
    measured = (y - x).flatten(1).std(dim=1) * 255
    assert torch.allclose(measured, sigma, rtol=0.08)


def test_blur_kernel_sums_to_one_and_rho_zero_is_identity() -> None:
    k = gaussian_kernel2d(torch.tensor([0.0, 0.7, 2.0, 4.0]))
    assert k.shape == (4, 21, 21)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(4, dtype=k.dtype))
    assert k[0, 10, 10] == 1 and k[0].sum() == 1
    assert torch.allclose(k, k.transpose(1, 2)) and torch.allclose(k, k.flip(1))
    x = torch.rand(2, 3, 30, 31, generator=_gen())
    y, params = GaussianBlur(rho=0)(x, _gen())
    assert torch.equal(params["rho"], torch.zeros(2)) and torch.allclose(y, x, atol=1e-6)


def test_blur_keeps_constants_and_uses_each_samples_rho() -> None:
    c = torch.full((1, 3, 25, 25), 0.3)
    assert torch.allclose(gaussian_blur(c, 3.0), c, atol=1e-6)
    x = torch.rand(2, 3, 32, 32, generator=_gen())
    both = gaussian_blur(x, torch.tensor([1.0, 3.0]))
    assert torch.allclose(both[1:], gaussian_blur(x[1:], 3.0), atol=1e-6)
    assert both[1].std() < both[0].std() < x[0].std()
    ref = torch.nn.functional.conv2d(  # direct 2-D convolution of the interior agrees with the separable one
        x[:1].reshape(3, 1, 32, 32), gaussian_kernel2d(1.0).float()[:, None]
    )
    assert torch.allclose(gaussian_blur(x[:1], 1.0)[0, :, 10:-10, 10:-10], ref[:, 0], atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_shapes_and_constants(scale: int) -> None:
    x = torch.rand(2, 3, 12 * scale, 8 * scale, generator=_gen())
    y, params = BicubicDownsample(scale=scale)(x)
    assert y.shape == (2, 3, 12, 8) and params["scale"].tolist() == [scale, scale]
    c = torch.full((1, 3, 6 * scale, 6 * scale), 0.7)
    assert torch.allclose(bicubic_downsample(c, scale), torch.full((1, 3, 6, 6), 0.7), atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        bicubic_downsample(x[..., :-1], scale)


@pytest.mark.skipif(
    not (SHARED / "datasets" / "Set5").is_dir(), reason="../shared/datasets/Set5 not available"
)
def test_bicubic_reproduces_the_set5_lr_images() -> None:
    # The stored LR images are MATLAB bicubic; ours match to well within a grey level on average.
    for k in (2, 4):
        hr = read_image(SHARED / "datasets" / "Set5" / f"image_SRF_{k}" / f"img_002_SRF_{k}_HR.png")
        lr = read_image(SHARED / "datasets" / "Set5" / f"image_SRF_{k}" / f"img_002_SRF_{k}_LR.png")
        ours = bicubic_downsample(hr[None].double(), k)[0]
        mse = (to_uint8(ours).double() - to_uint8(lr).double()).pow(2).mean()
        assert 10 * torch.log10(255**2 / mse) > 50


def test_build_degradation_errors_and_names() -> None:
    assert {"noise", "blur", "downsample", "blur_noise", "chain"} <= set(degradation_names())
    with pytest.raises(ValueError, match="unknown degradation"):
        build_degradation({"name": "jpeg"})
    with pytest.raises(ValueError, match="sigma"):
        build_degradation({"name": "noise", "sigma": [30, 5]})
    with pytest.raises(ValueError, match="bad options"):
        build_degradation({"name": "noise", "rho": 1})
    with pytest.raises(ValueError, match="kernel_size"):
        GaussianBlur(kernel_size=20)
    with pytest.raises(ValueError, match="replicate"):
        gaussian_blur(torch.rand(1, 3, 8, 8), 1.0)
    assert gaussian_blur(torch.rand(1, 3, 8, 8), 1.0, padding="replicate").shape == (1, 3, 8, 8)


def test_blur_then_noise_reports_both_parameters() -> None:
    x = torch.full((4, 3, 24, 24), 0.5)
    y, params = build_degradation({"name": "blur_noise", "rho": [1, 2], "sigma": [10, 20]})(x, _gen())
    assert set(params) == {"rho", "sigma", "noise"} and y.shape == x.shape
    assert params["rho"].min() >= 1 and params["sigma"].max() <= 20


def test_blur_leaves_sharp_prob_of_the_samples_unblurred() -> None:
    x = torch.rand(64, 3, 24, 24, generator=_gen())
    never = GaussianBlur(rho=(1.0, 3.0), sharp_prob=1.0)
    y, params = never(x, _gen(1))
    assert torch.equal(params["rho"], torch.zeros(64)) and torch.allclose(y, x, atol=1e-6)
    half = build_degradation({"name": "blur_noise", "rho": [1.0, 3.0], "sigma": 0.0, "sharp_prob": 0.5})
    y, params = half(x, _gen(2))
    sharp = params["rho"] == 0
    assert 16 < int(sharp.sum()) < 48 and (params["rho"][~sharp] >= 1.0).all()
    torch.testing.assert_close(y[sharp], x[sharp], atol=1e-6, rtol=0)
    assert build_degradation(half.to_config()).to_config() == half.to_config()
    with pytest.raises(ValueError, match="sharp_prob must be in"):
        GaussianBlur(rho=2.0, sharp_prob=1.5)
