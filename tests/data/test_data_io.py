from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunify.data import (
    ImageReadError,
    grey_bit_depth,
    list_images,
    read_alpha,
    read_image,
    to_uint8,
    write_image,
)
from tunify.data.io import read_image_uint8


def test_png_round_trip_is_exact_on_uint8_levels(tmp_path: Path) -> None:
    img = torch.randint(0, 256, (3, 7, 9)).float() / 255
    path = write_image(img, tmp_path / "sub" / "a.png")
    back = read_image(path)
    assert back.shape == (3, 7, 9) and back.dtype == torch.float32
    assert torch.equal(back, img)


def test_write_clamps_and_rounds(tmp_path: Path) -> None:
    img = torch.tensor([-0.5, 0.5 / 255, 1.6 / 255, 2.0]).reshape(1, 1, 4).expand(3, 1, 4)
    arr = np.asarray(Image.open(write_image(img, tmp_path / "c.png")))
    assert arr[0, :, 0].tolist() == [0, 0, 2, 255]


def test_greyscale_to_three_channels_or_one(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 5), 51, np.uint8), mode="L").save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (3, 4, 5) and torch.allclose(rgb, torch.full_like(rgb, 0.2))
    assert read_image(tmp_path / "g.png", gray_to_rgb=False).shape == (1, 4, 5)


def test_sixteen_bit_greyscale_keeps_its_range(tmp_path: Path) -> None:
    levels = np.array([[0, 257, 32768, 65535]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "g16.png")  # PIL's own RGB conversion would clip these at 255
    img = read_image(tmp_path / "g16.png")
    assert img.shape == (3, 1, 4)
    torch.testing.assert_close(img[0, 0], torch.tensor(levels[0] / 65535.0, dtype=torch.float32))
    assert read_image_uint8(tmp_path / "g16.png", gray_to_rgb=False)[0, 0].tolist() == [0, 1, 128, 255]
    assert grey_bit_depth(tmp_path / "g16.png") == 16


def test_float_greyscale_reads_its_values_and_refuses_values_outside_zero_one(tmp_path: Path) -> None:
    """32-bit float TIFFs (mode F) read as all zeros: PIL's 8-bit conversion clipped them."""
    values = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    Image.fromarray(values).save(tmp_path / "f.tiff")
    torch.testing.assert_close(read_image(tmp_path / "f.tiff")[:, 0], torch.from_numpy(values).expand(3, 4))
    assert read_image_uint8(tmp_path / "f.tiff", gray_to_rgb=False)[0, 0].tolist() == [0, 64, 128, 255]
    assert grey_bit_depth(tmp_path / "f.tiff") == 16
    Image.fromarray(values * 255).save(tmp_path / "f255.tiff")
    with pytest.raises(ImageReadError, match=r"f255.tiff: a float image must hold values in \[0, 1\]"):
        read_image(tmp_path / "f255.tiff")


def test_sixteen_bit_greyscale_round_trip(tmp_path: Path) -> None:
    img = torch.tensor([[[0.0, 1 / 65535, 0.5, 1.0]]])
    path = write_image(img, tmp_path / "o.png", bits=16)
    assert np.asarray(Image.open(path)).tolist() == [[0, 1, 32768, 65535]]
    torch.testing.assert_close(read_image(path, gray_to_rgb=False), img, atol=0.5 / 65535 + 1e-7, rtol=0)
    with pytest.raises(ValueError, match="16-bit greyscale"):
        write_image(torch.zeros(3, 2, 2), tmp_path / "rgb.png", bits=16)
    write_image(torch.zeros(3, 2, 2), tmp_path / "rgb.png")
    assert grey_bit_depth(tmp_path / "rgb.png") is None


def test_alpha_is_read_apart_and_written_back(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = [[0, 51, 255], [255, 255, 102]]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    alpha = read_alpha(tmp_path / "a.png")
    assert alpha.shape == (1, 2, 3) and torch.equal(alpha, torch.from_numpy(rgba[..., 3]).float()[None] / 255)
    assert read_image(tmp_path / "a.png").shape == (3, 2, 3)  # colour channels only
    path = write_image(torch.cat([read_image(tmp_path / "a.png"), alpha]), tmp_path / "b.png")
    assert Image.open(path).mode == "RGBA" and np.array_equal(np.asarray(Image.open(path)), rgba)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    assert read_alpha(tmp_path / "rgb.png") is None


def test_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "x.jpg", quality=95)
    img = read_image(tmp_path / "x.jpg")
    assert img.shape == (3, 8, 8) and (img - 200 / 255).abs().max() < 3 / 255


def test_a_cameras_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone photo stored sideways with "rotate 90°" in its EXIF reads upright, alpha included."""
    stored = np.zeros((2, 3, 4), np.uint8)
    stored[0, 0] = [255, 0, 0, 255]  # a red, opaque top-left corner as stored
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: the viewer turns it 90° clockwise
    image.save(tmp_path / "phone.png", exif=exif)
    img, alpha = read_image(tmp_path / "phone.png"), read_alpha(tmp_path / "phone.png")
    assert img.shape == (3, 3, 2) and alpha.shape == (1, 3, 2)
    assert img[:, 0, 1].tolist() == [1.0, 0.0, 0.0] and alpha[0, 0, 1] == 1.0 and alpha[0, 0, 0] == 0.0


@pytest.mark.filterwarnings("error")
def test_tensors_are_writable_copies_for_every_layout(tmp_path: Path) -> None:
    """PIL's buffer is read-only; a 1×1 picture or one grey channel must not alias it either."""
    Image.fromarray(np.full((1, 1, 3), 9, np.uint8)).save(tmp_path / "dot.png")
    Image.fromarray(np.full((3, 4), 9, np.uint8)).save(tmp_path / "grey.png")
    for img in (
        read_image_uint8(tmp_path / "dot.png"),
        read_image_uint8(tmp_path / "grey.png", gray_to_rgb=False),
    ):
        img.add_(1)
        assert int(img.max()) == 10


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"bad\.png"):
        read_image(tmp_path / "bad.png")


def test_list_images_is_recursive_and_sorted(tmp_path: Path) -> None:
    for rel in ["b.png", "a/c.JPG", "a/skip.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a/c.JPG", "b.png"]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")


def test_to_uint8_rounds_half_to_even_like_numpy() -> None:
    x = torch.tensor([0.5, 1.5, 2.5]) / 255
    assert to_uint8(x).tolist() == np.round(np.array([0.5, 1.5, 2.5])).astype(np.uint8).tolist()


def test_write_image_puts_text_in_png_metadata_only(tmp_path: Path) -> None:
    img = torch.rand(3, 8, 8)
    path = write_image(img, tmp_path / "a.png", text={"omega": "0.3,0.7", "model": "ω-net"})
    with Image.open(path) as im:
        assert im.text == {"omega": "0.3,0.7", "model": "ω-net"}
    with Image.open(write_image(img, tmp_path / "a.jpg", text={"omega": "0.3,0.7"})) as im:
        assert "omega" not in getattr(im, "text", {})
