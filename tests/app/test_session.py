"""What the app computes, without a browser: previews, scores, the download, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunify.app import AppError, Settings, Tuner, open_picture
from tunify.app.layout import _about
from tunify.cli import main
from tunify.data import read_image


@pytest.fixture(scope="module")
def tuner(model_dir: Path) -> Tuner:
    return Tuner.load(str(model_dir))


def test_the_about_text_says_how_far_painted_regions_reach(tuner: Tuner) -> None:
    layers = len(tuner.config["conversion"]["layers"])
    assert f"Painted regions: {layers} of {layers} converted layers/tensors mix per pixel." in _about(tuner)


def test_preview_is_one_pass_at_the_chosen_omega(tuner: Tuner, image_path: Path) -> None:
    picture = open_picture(image_path)
    a = tuner.preview(picture, Settings(omega=[0.2, 0.8]))
    b = tuner.preview(picture, Settings(omega=[1.0, 0.0]))
    assert a.before.shape == a.after.shape == (64, 64, 3) and a.before.dtype == np.uint8
    assert np.abs(a.after.astype(int) - b.after.astype(int)).max() > 2  # ω changes the output
    with torch.inference_mode():
        expected = tuner.model(read_image(image_path)[None], omega=torch.tensor([0.2, 0.8]))
    ref = (expected[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(a.after.astype(int) - ref.astype(int)).max() <= 1
    assert "no clean image" in a.scores


def test_synthetic_noise_is_scored_with_psnr_and_psnr_eta(tuner: Tuner, image_path: Path) -> None:
    picture = open_picture(image_path)
    result = tuner.preview(picture, Settings(omega=[0.5, 0.5], levels=[25.0]))
    assert "**PSNR**" in result.scores and "**PSNR_η**" in result.scores and "ω2·0.9" in result.scores
    clean = read_image(image_path)[None]
    noisy = tuner.degradation.apply(clean, [25.0])
    assert (
        np.abs(
            result.before.astype(int) - (noisy[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
        ).max()
        <= 1
    )


def test_large_pictures_are_previewed_at_reduced_size(model_dir: Path, tmp_path: Path) -> None:
    small = Tuner.load(str(model_dir), preview_side=32)
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 100, 3), np.uint8)).save(path)
    result = small.preview(open_picture(path), Settings(omega=[0.5, 0.5]))
    assert result.after.shape == (13, 32, 3)


def test_an_upscaling_model_without_a_recipe_is_tried_on_a_downsampled_picture(image_path: Path) -> None:
    """Its synthetic degradation was noise at full size: the 2x output met a 1x clean image."""
    import tunify

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    tuner = Tuner(tunify.convert(net, 2))
    assert tuner.scale == 2 and tuner.degradation.kind == "downsample ×2"
    result = tuner.preview(open_picture(image_path), Settings(omega=[0.5, 0.5], levels=[]))
    assert result.after.shape == (64, 64, 3) and "**PSNR**" in result.scores


def test_a_greyscale_model_previews_and_exports_colour_pictures(image_path: Path, tmp_path: Path) -> None:
    import tunify

    torch.manual_seed(0)
    grey = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 1, "out_nc": 1, "nc": 4, "nb": 2}})
    tuner = Tuner(tunify.convert(grey, 2))
    picture, settings = open_picture(image_path), Settings(omega=[0.5, 0.5], levels=[25.0])
    assert tuner.preview(picture, settings).after.shape == (64, 64, 3)
    with Image.open(tuner.export(picture, settings, tmp_path)) as written:
        assert written.mode == "RGB" and written.size == (64, 64)


def test_download_is_what_tunify_apply_writes_with_omega_in_the_metadata(
    tuner: Tuner, model_dir: Path, image_path: Path, tmp_path: Path
) -> None:
    mask = torch.zeros(64, 64)
    mask[:20, :20] = 1
    settings = Settings(omega=[0.2, 0.8], region_omega=[1.0, 0.0], mask=mask)
    assert tuner.omega(settings, (64, 64)).shape == (1, 2, 64, 64)
    plain = tuner.export(open_picture(image_path), Settings(omega=[0.2, 0.8]), tmp_path)
    assert (
        main(
            [
                "apply",
                str(image_path),
                "--omega",
                "0.2,0.8",
                "--model",
                str(model_dir),
                "-o",
                str(tmp_path / "ref.png"),
            ]
        )
        == 0
    )
    with Image.open(plain) as im, Image.open(tmp_path / "ref.png") as ref:
        assert im.text["omega"] == "0.2,0.8" and ref.text["omega"] == "0.2,0.8"
        assert im.text["model"] == str(model_dir)
        assert np.array_equal(np.asarray(im), np.asarray(ref))


def test_bad_files_are_refused_with_a_message(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppError, match=r"notes\.png is not an image"):
        open_picture(text)
    big = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(big)
    with pytest.raises(AppError, match=r"3000x2000 = 6.0 megapixels; the app takes up to 5"):
        open_picture(big, max_pixels=5_000_000)


def test_a_model_that_fails_to_load_is_an_app_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AppError, match="cannot load the model"):
        Tuner.load(str(tmp_path))


def test_a_picture_the_network_cannot_take_is_an_app_error(image_path: Path, tmp_path: Path) -> None:
    import tunify

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 5, padding=2, padding_mode="reflect"))
    tuner, dot = Tuner(tunify.convert(net, 2)), tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(dot)
    with pytest.raises(AppError, match="cannot run on this 1x1 picture"):
        tuner.preview(open_picture(dot), Settings(omega=[0.5, 0.5]))
    with pytest.raises(AppError, match="cannot run on this 1x1 picture"):
        tuner.export(open_picture(dot), Settings(omega=[0.5, 0.5]), tmp_path)


def test_omega_out_of_range_is_an_app_error(tuner: Tuner, image_path: Path) -> None:
    with pytest.raises(AppError, match=r"\[0, 1\]"):
        tuner.preview(open_picture(image_path), Settings(omega=[1.5, -0.5]))


def test_bfloat16_preview_is_close_and_says_so_while_the_download_stays_exact(
    model_dir: Path, image_path: Path, tmp_path: Path
) -> None:
    from tunify.app.session import bfloat16_is_native

    if not bfloat16_is_native():
        with pytest.raises(AppError, match="native bfloat16"):
            Tuner.load(str(model_dir), preview_precision="bfloat16")
        pytest.skip("this CPU has no native bfloat16")
    exact, fast = Tuner.load(str(model_dir)), Tuner.load(str(model_dir), preview_precision="bfloat16")
    picture, settings = open_picture(image_path), Settings(omega=[0.2, 0.8], levels=[15.0])
    a, b = exact.preview(picture, settings), fast.preview(picture, settings)
    assert np.abs(a.after.astype(int) - b.after.astype(int)).max() <= 8
    assert "bfloat16" in b.scores and "bfloat16" not in a.scores
    exported = [t.export(picture, settings, tmp_path / name) for t, name in ((exact, "a"), (fast, "b"))]
    assert np.array_equal(*(np.asarray(Image.open(path)) for path in exported))
    with pytest.raises(AppError, match="preview precision must be one of"):
        Tuner.load(str(model_dir), preview_precision="float16")
