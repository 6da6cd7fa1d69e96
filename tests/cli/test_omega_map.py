"""`tunify apply --omega-map`: per-region ω from an image, tiled like any other input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import tiny_dncnn
from tunify.cli import main
from tunify.hub import save_pretrained


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmodel = tiny_dncnn(scale=0.1)
    return save_pretrained(tmodel, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "in.png"
    Image.fromarray((torch.rand(36, 48, 3) * 255).byte().numpy()).save(path)
    return path


def _apply(tmp_path: Path, image: Path, model_dir: Path, name: str, *extra: str) -> np.ndarray:
    out = tmp_path / name
    assert (
        main(["apply", str(image), "--model", str(model_dir), "-o", str(out), "--no-progress", *extra]) == 0
    )
    return np.asarray(Image.open(out)).astype(int)


def test_half_black_half_white_map_is_each_end_away_from_the_boundary(
    model_dir: Path, image: Path, tmp_path: Path
) -> None:
    levels = np.zeros((18, 24), np.uint8)  # half the image's size: the map is resized to the image
    levels[:, 12:] = 255
    Image.fromarray(levels, mode="L").save(tmp_path / "map.png")
    mapped = _apply(tmp_path, image, model_dir, "mapped.png", "--omega-map", str(tmp_path / "map.png"))
    black = _apply(tmp_path, image, model_dir, "black.png", "--omega", "0,1")
    white = _apply(tmp_path, image, model_dir, "white.png", "--omega", "1,0")
    assert np.abs(black - white)[:, :16].max() > 3
    assert np.abs(mapped[:, :16] - black[:, :16]).max() <= 1  # receptive field: 5 px; bilinear edge: 2 px
    assert np.abs(mapped[:, 32:] - white[:, 32:]).max() <= 1
    tiled = _apply(
        tmp_path,
        image,
        model_dir,
        "tiled.png",
        "--omega-map",
        str(tmp_path / "map.png"),
        "--tile",
        "24",
        "--overlap",
        "12",
    )
    assert np.abs(tiled - mapped).max() <= 1
    ranged = _apply(
        tmp_path,
        image,
        model_dir,
        "ranged.png",
        "--omega-map",
        str(tmp_path / "map.png"),
        "--omega-range",
        "1,0",
        "1,0",
    )
    assert np.abs(ranged - white).max() <= 1


def test_bad_maps_are_one_line_errors(
    model_dir: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    base = ["apply", str(image), "--model", str(model_dir), "-o", str(tmp_path / "o.png")]
    cases = [
        (["--omega-map", str(tmp_path / "rgb.png")], "has 3 channels"),
        (["--omega-map", str(tmp_path / "junk.png")], "not a readable image"),
        (["--omega-map", str(tmp_path / "rgb.png"), "--omega", "1,0"], "not both"),
        (["--omega-range", "0,1", "1,0"], "goes with --omega-map"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
