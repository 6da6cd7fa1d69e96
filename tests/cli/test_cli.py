"""The `tunify` command, called in-process: outputs, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

import tunify
from tests.conftest import tiny_dncnn
from tunify.cli import demo as demo_cmd
from tunify.cli import main
from tunify.cli.info import _p_line, map_line
from tunify.hub import save_pretrained


def _tiny_denoiser(seed: int = 0) -> tunify.TunableModel:
    tmodel = tiny_dncnn(seed)
    tmodel.info = {
        "task": "denoising",
        "objectives": [
            {"name": "fidelity", "omega_index": 0, "description": "denoising strength"},
            {"name": "noise", "omega_index": 1, "description": "noise preservation"},
        ],
        "metrics": {"sample noise(sigma=25.0)": {"ω=(1, 0)": {"psnr": 30.5, "ssim": 0.85, "n_images": 2}}},
    }
    return tmodel


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pretrained(_tiny_denoiser(), tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray((torch.rand(40, 52, 3) * 255).byte().numpy()).save(path)
    return path


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tunify: error: ") and "Traceback" not in err
    return err


def test_apply_writes_image(
    model_dir: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    assert main(["apply", str(image), "--omega", "0.3,0.7", "--model", str(model_dir), "-o", str(out)]) == 0
    assert Image.open(out).size == (52, 40)
    tiled = tmp_path / "tiled.png"
    argv = ["apply", str(image), "--omega", "0.3,0.7", "--model", str(model_dir), "-o", str(tiled)]
    assert main([*argv, "--tile", "24", "--overlap", "12", "--no-progress"]) == 0
    a, b = (torch.tensor(np.array(Image.open(p))).int() for p in (out, tiled))
    assert (a - b).abs().max() <= 1  # tiles blend to the same image (up to 8-bit rounding)
    assert main([*argv, "--tile", "24", "--no-progress"]) == 0  # the overlap measured ('auto')
    b = torch.tensor(np.array(Image.open(tiled))).int()
    assert (a - b).abs().max() <= 1
    assert "wrote" in capsys.readouterr().out
    for bad, why in [("-3", "must be >= 0"), ("wide", "a number of pixels or 'auto'")]:
        assert why in _error(capsys, [*argv, "--overlap", bad])


def test_apply_carries_transparency_over(model_dir: Path, image: Path, tmp_path: Path) -> None:
    rgba = Image.open(image).convert("RGBA")
    alpha = (np.arange(40 * 52).reshape(40, 52) % 256).astype(np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "in.png")
    argv = ["apply", str(tmp_path / "in.png"), "--omega", "1,0", "--model", str(model_dir), "-o"]
    assert main([*argv, str(tmp_path / "out.png")]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)
    assert main([*argv, str(tmp_path / "out.jpg")]) == 0  # JPEG has no alpha: RGB
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_apply_gives_greyscale_back_for_greyscale_input(model_dir: Path, image: Path, tmp_path: Path) -> None:
    grey, grey16, out = tmp_path / "grey.png", tmp_path / "grey16.png", tmp_path / "out.png"
    Image.open(image).convert("L").save(grey)
    Image.fromarray(np.asarray(Image.open(grey)).astype(np.uint16) * 257).save(grey16)
    argv = ["apply", "--omega", "1,0", "--model", str(model_dir), "-o"]
    assert main([*argv, str(out), str(grey)]) == 0
    assert Image.open(out).mode == "L" and Image.open(out).size == (52, 40)
    assert main([*argv, str(tmp_path / "out16.png"), str(grey16)]) == 0  # the same image in 16 bits
    out16 = np.asarray(Image.open(tmp_path / "out16.png")).astype(np.int64)
    assert Image.open(tmp_path / "out16.png").mode.startswith("I")  # 16-bit greyscale
    assert np.abs(out16 / 257 - np.asarray(Image.open(out))).max() <= 1
    assert main([*argv, str(tmp_path / "out16.jpg"), str(grey16)]) == 0  # JPEG has no 16 bits: 8
    assert Image.open(tmp_path / "out16.jpg").mode == "L"


def test_a_picture_the_network_cannot_take_is_a_user_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SwinIR reflect-pads to its window: on a 1x1 picture it raised, reported as tunify's internal error."""
    spec = {
        "architecture": "SwinIR",
        "kwargs": {"img_size": 8, "window_size": 8, "depths": [1], "num_heads": [1], "embed_dim": 8},
    }
    tunify.convert(tunify.zoo.build(spec).eval(), 2).save_pretrained(tmp_path / "swinir")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    args = [
        "apply",
        str(tmp_path / "dot.png"),
        "--model",
        str(tmp_path / "swinir"),
        "-o",
        str(tmp_path / "o.png"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the model cannot run on " in err and "dot.png (1x1)" in err and "internal error" not in err


def test_sweep_of_independent_knobs_is_a_grid_with_its_corners(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It swept the line ω1 + ω2 = 1, which never shows (0, 0) or (1, 1) (the deblur recipe's corners)."""
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 4, "nb": 2}})
    tunify.convert(base.eval(), 2, independent=True).save_pretrained(tmp_path / "knobs")
    strip = tmp_path / "grid.png"
    assert (
        main(["sweep", str(image), "--model", str(tmp_path / "knobs"), "-o", str(strip), "--steps", "3"]) == 0
    )
    assert "(9 ω)" in capsys.readouterr().out
    one = tmp_path / "one.png"
    assert (
        main(["sweep", str(image), "--model", str(tmp_path / "knobs"), "-o", str(one), "--omega", "0,0"]) == 0
    )
    (width, height), (cell_w, cell_h) = Image.open(strip).size, Image.open(one).size
    assert round(width / (cell_w / 2)) == 4 and round(height / cell_h) == 3  # input + 3 columns, 3 rows


def test_sweep_and_info(
    model_dir: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strip = tmp_path / "s" / "strip.png"
    assert main(["sweep", str(image), "--model", str(model_dir), "-o", str(strip), "--steps", "3"]) == 0
    assert strip.is_file()
    assert main(["info", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"p: {11}2  \(\d+ layers tunable\)", out), out
    assert "ω1:          fidelity: denoising strength" in out
    assert "DnCNN" in out and "sample noise(sigma=25.0)" in out
    header, row = (line.split() for line in out.splitlines()[-2:])
    assert header == ["psnr", "ssim", "n_images"] and row == ["ω=(1,", "0)", "30.50", "0.8500", "2"]
    assert main(["info"]) == 0  # no argument: the embedded model
    out = capsys.readouterr().out
    assert out.startswith("model:       the embedded model (") and "default_denoiser" in out


def test_convert_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = {
        "in_nc": 3,
        "out_nc": 3,
        "nc": 8,
        "nb": 8,
        "act_mode": "R",
    }  # deep enough for spandrel to detect
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": kwargs})
    torch.save(base.state_dict(), tmp_path / "dncnn.pth")
    assert main(["convert", str(tmp_path / "dncnn.pth"), "--p", "3", "-o", str(tmp_path / "out")]) == 0
    assert "made tunable (p = 3" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["p"] == 3
    assert tunify.from_pretrained(tmp_path / "out").p == 3


def test_convert_takes_the_recipes_targets_a_strategy_and_its_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tunify.zoo.create("nafnet_sidd_w32", width=8, enc_blk_nums=[1], middle_blk_num=1, dec_blk_nums=[1])
    torch.save(net.state_dict(), tmp_path / "nafnet.pth")
    args = ["convert", str(tmp_path / "nafnet.pth"), "-o", str(tmp_path / "out"), "--exclude", r".*\.sca\.1"]
    assert main([*args, "--strategy", "lowrank", "--option", "rank=2", "--independent"]) == 0
    assert "strategy lowrank" in capsys.readouterr().out
    spec = json.loads((tmp_path / "out" / "config.json").read_text())["conversion"]
    assert spec["strategy"] == "lowrank" and spec["strategy_options"] == {"rank": 2} and spec["independent"]
    assert "encoders.0.0.beta" in spec["tensors"]  # NAFNet's β and γ, as the recipes convert them
    assert "intro" in spec["layers"] and not any(name.endswith("sca.1") for name in spec["layers"])
    x = torch.rand(1, 3, 16, 16)
    tunify.from_pretrained(tmp_path / "out")(x, omega=torch.tensor([0.3, 0.6]))  # loads strictly and runs
    for option, message in (("rank", "expected KEY=VALUE"), ("rnak=2", "no option(s) ['rnak']")):
        assert main([*args, "--strategy", "lowrank", "--option", option]) == 2
        assert message in capsys.readouterr().err


def test_bake_writes_a_plain_network(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain.safetensors"
    assert main(["bake", "--model", str(model_dir), "--omega", "1,0", "-o", str(out)]) == 0
    assert "baked DnCNN" in capsys.readouterr().out
    tmodel = tunify.from_pretrained(model_dir)
    plain = tunify.bake(tmodel, torch.tensor([1.0, 0.0]))
    state = safetensors.torch.load_file(out)
    assert set(state) == set(plain.state_dict())
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(state[key], value)
    assert main(["bake", "--model", str(model_dir), "--omega", "1", "-o", str(out)]) == 2
    assert "p = 2" in capsys.readouterr().err


def test_bake_records_omega_and_source_and_info_reads_it(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain.safetensors"
    assert main(["bake", "--model", str(model_dir), "--omega", "0.25,0.75", "-o", str(out)]) == 0
    with safetensors.safe_open(out, framework="pt") as f:
        record = json.loads(f.metadata()["tunify_baked"])
    assert record["omega"] == [0.25, 0.75] and record["source"] == str(model_dir) and record["p"] == 2
    assert record["base"]["architecture"] == "DnCNN" and record["objectives"][0]["name"] == "fidelity"
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "baked at:    ω = (0.25, 0.75)" in text and f"from:        {model_dir}" in text
    assert "base:        DnCNN" in text and "ω2:          noise: noise preservation" in text
    saved = tmp_path / "tunable.safetensors"  # a tunify.save file: described from its conversion spec
    tunify.save(tunify.from_pretrained(model_dir), saved)
    assert main(["info", str(saved)]) == 0
    assert re.search(r"p: {11}2  \(\d+ layers tunable\)", capsys.readouterr().out)
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    assert "no tunify metadata" in _error(capsys, ["info", str(tmp_path / "foreign.safetensors")])


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["apply", "{missing}", "--omega", "0.5,0.5", "--model", "{model}", "-o", "x.png"],
            "image not found",
        ),
        (["apply", "{image}", "--omega", "0.5", "--model", "{model}", "-o", "x.png"], "p = 2"),
        (["apply", "{image}", "--omega", "0.5,1.5", "--model", "{model}", "-o", "x.png"], r"\[0, 1\]"),
        (["apply", "{image}", "--omega", "a,b", "--model", "{model}", "-o", "x.png"], "comma-separated"),
        (
            ["apply", "{image}", "--omega", "-0.1,1", "--model", "{model}", "-o", "x.png"],
            r"\[0, 1\], got -0.1,1",
        ),
        (["apply", "{image}", "--omega", "nan,1", "--model", "{model}", "-o", "x.png"], "contains NaN"),
        (["sweep", "{image}", "--omega", "-1,2", "--model", "{model}", "-o", "s.png"], r"\[0, 1\]"),
        (["bake", "--omega", "-0.5,1", "--model", "{model}", "-o", "b.safetensors"], r"\[0, 1\]"),
        (["bake", "--omega", "1,0", "--model", "{model}", "-o", "b.pth"], "safetensors only"),
        (["demo", "--sigma", "-5", "-o", "{tmp}"], r"--sigma must lie in \(0, 255\]"),
        (["demo", "--sigma", "nan", "-o", "{tmp}"], r"--sigma must lie in \(0, 255\]"),
        (["demo", "--sigma", "300", "-o", "{tmp}"], r"--sigma must lie in \(0, 255\]"),
        (["apply", "{image}", "--model", "{missing}", "-o", "x.png"], "not a valid Hub repo id"),
        (["apply", "{bad_image}", "--model", "{model}", "-o", "x.png"], "cannot read image"),
        (["sweep", "{image}", "--model", "/nonexistent/dir/model", "-o", "s.png"], "not a valid Hub repo id"),
        (["info", "{image}"], "is a file"),
        (["convert", "{missing}", "-o", "d"], "no such file"),
        (["apply", "{image}", "-o", "x.png", "--frobnicate"], "unrecognized arguments"),
        (["apply", "{image}", "-o", "x.png", "--device", "gpu0"], "unknown device 'gpu0'"),
        (["sweep", "{image}", "-o", "s.png", "--device", "cuda:7"], "cuda:7: this machine has"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_errors_are_one_line(
    argv: list[str],
    match: str,
    model_dir: Path,
    image: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths = {
        "model": model_dir,
        "image": image,
        "missing": tmp_path / "nope.png",
        "bad_image": bad,
        "tmp": tmp_path,
    }
    argv = [a.format(**paths) for a in argv]
    assert re.search(match, _error(capsys, argv))


@pytest.mark.parametrize("command", ["apply", "sweep"])
def test_unsupported_output_extension_fails_before_any_work(
    command: str,
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output name was checked")

    monkeypatch.setattr(f"tunify.cli.{command}.load_model", no_model)
    for name in ("out.xyz", "out"):
        err = _error(capsys, [command, str(image), "-o", str(tmp_path / name)])
        assert "not an image format tunify writes" in err and ".png" in err
    assert not list(tmp_path.glob("out*"))


def test_unknown_model_offline_fails_fast(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for argv in (["info", "acme/nothing"], ["apply", str(image), "--model", "acme/nothing", "-o", "x.png"]):
        start = time.perf_counter()
        assert "acme/nothing/config.json: not a local folder, not in the Hugging Face cache" in _error(
            capsys, argv
        )
        assert time.perf_counter() - start < 3.0


def test_missing_embedded_model_is_one_line(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("tunify.hub.assets.DEFAULT_MODEL_DIR", tmp_path / "gone")
    for argv in (["apply", str(image), "-o", str(tmp_path / "x.png")], ["demo", "-o", str(tmp_path)]):
        assert "embedded model is missing" in _error(capsys, argv)


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("demo", "apply", "sweep", "convert", "info"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: tunify " + command in capsys.readouterr().out


def test_demo_embedded(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_cmd, "embedded_model_dir", lambda: model_dir)
    assert main(["demo", "-o", str(tmp_path), "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "embedded tunable denoiser" in out and "PSNR_η" in out
    assert {"tuning_strip.png", "sweep.json", "sweep.md"} <= {p.name for p in tmp_path.iterdir()}


def test_output_into_a_closed_pipe_stops_quietly(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tunify info … | head -1`: the reader leaves early; no "Broken pipe" error line, exit status 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: writing raises BrokenPipeError (Python ignores SIGPIPE)
    with open(write_end, "w", buffering=1) as pipe:
        monkeypatch.setattr("sys.stdout", pipe)
        assert main(["info", str(model_dir)]) == 141
    assert capsys.readouterr().err == ""


def test_the_command_line_starts_without_heavy_imports() -> None:
    """Every command pays for what `import tunify.cli` loads: torch._dynamo (a `torch.compiler.disable`
    decorator) added a second; timm, spandrel, gradio and onnx load inside the commands that use them."""
    import subprocess
    import sys

    heavy = ["torch._dynamo", "timm", "spandrel", "gradio", "onnx"]
    code = f"import sys, tunify.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_info_counts_what_was_made_tunable() -> None:
    conversion = {"layers": ["intro"], "tensors": ["blocks.0.beta", "blocks.0.gamma"]}
    assert _p_line(3, conversion) == "p:           3  (1 layer and 2 tensors tunable)"
    assert _p_line(2, {"layers": [], "tensors": ["beta"]}) == "p:           2  (1 tensor tunable)"


def test_info_says_how_an_omega_map_acts() -> None:
    conversion = {
        "layers": ["conv_first", "blocks.0.attn.qkv", "blocks.0.mlp.fc1", "conv_last"],
        "tensors": [],
        "map_averaged": ["blocks.0.attn.qkv"],
        "map_per_token": ["blocks.0.mlp.fc1"],
    }
    assert map_line(conversion) == (
        "2 of 4 converted layers/tensors mix per pixel, 1 per token (Linear layers, where their input holds "
        "the image's tokens or windows); the map's average drives blocks.0.attn.qkv"
    )
    del conversion["map_per_token"]  # a file written before Linear layers followed the tokens
    assert map_line(conversion).startswith("3 of 4 converted layers/tensors mix per pixel;")
