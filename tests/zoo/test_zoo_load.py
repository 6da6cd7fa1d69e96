"""`tunify.zoo.load`: official checkpoints load safely and reproduce the official outputs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file
from zoo_testdata import FIXTURE_PREFIX, fixture_by_name, fixture_io, fixture_params

import tunify
from tunify import zoo

ATOL = RTOL = 1e-4


@pytest.mark.parametrize("path", fixture_params())
def test_fixture_reproduces_official_output(path: Path) -> None:
    model = zoo.load(path, prefix=FIXTURE_PREFIX)
    assert not model.training
    x, expected = fixture_io(path)
    with torch.no_grad():
        y = model(x)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("path", fixture_params())
def test_describe_build_round_trip(path: Path) -> None:
    model = zoo.load(path, prefix=FIXTURE_PREFIX)
    spec = zoo.describe(model)
    meta = json.loads((path.with_suffix(".json")).read_text())
    assert spec["architecture"] == meta["official_class"]
    assert zoo.ArchSpec.from_dict(json.loads(json.dumps(spec))).to_dict() == spec  # JSON-able as is
    for k, v in meta["constructor_kwargs"].items():  # detected hyper-parameters match the official ones
        assert spec["kwargs"][k] == v, k
    rebuilt = zoo.build(spec)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert zoo.describe(rebuilt) == spec
    x, expected = fixture_io(path)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), expected, atol=ATOL, rtol=RTOL)


def test_spandrel_classes_are_described_by_the_name_spandrel_exports() -> None:
    """ESRGAN's class is RRDBNet, exported as ESRGAN; RealCUGAN records scale/fast beside its constructor's
    keywords. Specs name what build can find, and a spec naming the class itself still builds."""
    esrgan = zoo.build({"architecture": "ESRGAN", "kwargs": {"num_filters": 8, "num_blocks": 1}})
    assert type(esrgan).__name__ == "RRDBNet" and "class_name" not in zoo.describe(esrgan)
    old_spec = {
        "architecture": "ESRGAN",
        "class_name": "RRDBNet",
        "kwargs": {"num_filters": 8, "num_blocks": 1},
    }
    assert type(zoo.build(old_spec)) is type(esrgan)
    from spandrel.architectures.RealCUGAN import UpCunet2x

    spec = zoo.describe(UpCunet2x())
    assert (
        spec["class_name"] == "UpCunet2x" and "scale" not in spec["kwargs"] and "fast" not in spec["kwargs"]
    )
    assert type(zoo.build(spec)) is UpCunet2x


def _small() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    path = fixture_by_name("nafnet_small")
    sd = zoo.read_state_dict(path, prefix=FIXTURE_PREFIX)
    x, y = fixture_io(path)
    return sd, x, y


def _out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("wrapper", [None, "params", "params_ema"])
def test_official_pth_wrappers(tmp_path: Path, wrapper: str | None) -> None:
    sd, x, y = _small()
    path = tmp_path / "net.pth"
    torch.save(sd if wrapper is None else {wrapper: sd}, path)
    torch.testing.assert_close(_out(zoo.load(path), x), y, atol=ATOL, rtol=RTOL)


def test_params_ema_preferred_and_module_prefix(tmp_path: Path) -> None:
    sd, x, y = _small()
    noisy = {k: v + 1.0 if v.is_floating_point() else v for k, v in sd.items()}
    path = tmp_path / "both.pth"
    torch.save({"params": noisy, "params_ema": {f"module.{k}": v for k, v in sd.items()}}, path)
    torch.testing.assert_close(_out(zoo.load(path), x), y, atol=ATOL, rtol=RTOL)


def test_safetensors_file_and_in_memory_dict_not_mutated(tmp_path: Path) -> None:
    sd, x, y = _small()
    path = tmp_path / "net.safetensors"
    save_file(sd, str(path))
    torch.testing.assert_close(_out(zoo.load(path), x), y, atol=ATOL, rtol=RTOL)
    wrapped = {"params": {f"module.{k}": v for k, v in sd.items()}}
    before = {k: id(v) for k, v in wrapped["params"].items()}
    torch.testing.assert_close(_out(zoo.load(wrapped), x), y, atol=ATOL, rtol=RTOL)
    assert list(wrapped) == ["params"] and {k: id(v) for k, v in wrapped["params"].items()} == before


def test_strict_false_ignores_extra_entries() -> None:
    sd, x, y = _small()
    extra = {**sd, "extra_head.weight": torch.zeros(2), "epoch": 7}
    with pytest.raises(zoo.CheckpointError, match="not tensors"):
        zoo.load(extra)
    with pytest.raises(zoo.CheckpointError, match="extra_head"):
        zoo.load({k: v for k, v in extra.items() if k != "epoch"})
    torch.testing.assert_close(_out(zoo.load(extra, strict=False), x), y, atol=ATOL, rtol=RTOL)


def test_missing_weights_are_an_error() -> None:
    sd, _, _ = _small()
    sd.pop("ending.bias")
    with pytest.raises(zoo.CheckpointError, match=r"ending\.bias"):
        zoo.load(sd, strict=False)


# --- errors name the file and the problem -----------------------------------------------------------------
class _RunsCode:
    """Pickles to a call of `os.system`: a file that only loads by executing code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_good_pth(path: Path) -> bytes:
    torch.save({"params": {"w": torch.randn(64, 64)}}, path)
    return path.read_bytes()


def test_pickle_needing_code_execution_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": _RunsCode(marker)}, path)
    with pytest.raises(zoo.UnsafeCheckpointError, match=r"evil\.pth.*code execution.*system"):
        zoo.load(path)
    assert not marker.exists()


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pth"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(zoo.UnsafeCheckpointError, match=r"whole_model\.pth.*Linear"):
        zoo.load(path)


@pytest.mark.parametrize(
    ("name", "mangle", "problem"),
    [
        ("truncated.pth", lambda b: b[: len(b) // 2], "truncated or corrupt"),
        ("empty.pth", lambda b: b"", "empty"),
        ("garbage.pth", lambda b: bytes(range(7, 250)) * 4, "corrupt"),
        ("flipped.pth", lambda b: b[:40] + bytes(x ^ 0xFF for x in b[40:200]) + b[200:], "corrupt"),
    ],
)
def test_corrupt_pth(tmp_path: Path, name: str, mangle, problem: str) -> None:
    good = _write_good_pth(tmp_path / "good.pth")
    path = tmp_path / name
    path.write_bytes(mangle(good))
    with pytest.raises(zoo.CheckpointError, match=rf"{re.escape(name)}.*{problem}"):
        zoo.load(path)


@pytest.mark.parametrize("cut", [5, 20, 10_000])
def test_corrupt_safetensors(tmp_path: Path, cut: int) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(good))
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good.read_bytes()[:-cut] if cut < 10_000 else good.read_bytes()[: cut // 1000])
    with pytest.raises(tunify.CheckpointError, match=r"cut\.safetensors.*(truncated|corrupt)"):
        zoo.load(path)  # one class: what tunify.load raises is what zoo.load raises


def test_one_checkpoint_error_class() -> None:
    from tunify.convert import CheckpointError

    assert zoo.CheckpointError is tunify.CheckpointError is CheckpointError
    assert issubclass(zoo.UnsafeCheckpointError, tunify.CheckpointError)
    assert issubclass(zoo.CheckpointNotFoundError, tunify.CheckpointError)


def test_empty_safetensors_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(zoo.CheckpointError, match=r"e\.safetensors.*empty"):
        zoo.load(tmp_path / "e.safetensors")
    with pytest.raises(zoo.CheckpointNotFoundError, match=r"nope\.pth"):
        zoo.load(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        zoo.load(str(tmp_path / "nope.pth"))


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mlp.pth"
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict(), path)
    with pytest.raises(zoo.UnknownArchitectureError, match=r"mlp\.pth.*unknown architecture.*0\.weight"):
        zoo.load(path)
    with pytest.raises(zoo.UnknownArchitectureError, match="state dict"):
        zoo.load({"foo.weight": torch.zeros(3)})


def _conv_stack(channels: int, width: int, depth: int, last: int | None = None, k: int = 3) -> nn.Sequential:
    """DnCNN's original layout: a bare nn.Sequential of convolutions with ReLUs between them."""
    sizes = [channels] + [width] * (depth - 1) + [channels if last is None else last]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(sizes[i], sizes[i + 1], k, padding=k // 2), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


@pytest.mark.parametrize("channels", [1, 3])
def test_bare_dncnn_stack_is_read_as_residual_dncnn(tmp_path: Path, channels: int) -> None:
    body = _conv_stack(channels, 8, 5)
    torch.save(body.state_dict(), tmp_path / "stack.pth")
    net = zoo.load(tmp_path / "stack.pth")
    kwargs = {"in_nc": channels, "out_nc": channels, "nc": 8, "nb": 5, "act_mode": "R", "mode": "DnCNN"}
    assert zoo.describe(net) == {"architecture": "DnCNN", "kwargs": kwargs}
    x = torch.rand(2, channels, 12, 12)
    torch.testing.assert_close(_out(net, x), x - _out(body, x))


@pytest.mark.parametrize(
    "body",
    [_conv_stack(3, 8, 5, last=12), _conv_stack(4, 8, 5), _conv_stack(3, 8, 5, k=5), _conv_stack(3, 8, 2)],
    ids=["in-out-differ", "four-channels", "5x5", "too-shallow"],
)
def test_other_conv_stacks_are_not_taken_for_dncnn(body: nn.Sequential) -> None:
    with pytest.raises(zoo.UnknownArchitectureError):
        zoo.load(body.state_dict())


def test_real_cdncnn_b_loads(shared: Path) -> None:
    path = shared / "pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth"
    body = _conv_stack(3, 64, 20)
    body.load_state_dict(torch.load(path, weights_only=True))
    net = zoo.load(path)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(_out(net, x), x - _out(body, x))


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(zoo.CheckpointError, match=r"list\.pth.*expected a state dict"):
        zoo.load(path)
    with pytest.raises(zoo.CheckpointError, match=r"prefix 'nope\.'"):
        zoo.load({"a": torch.zeros(1)}, prefix="nope.")


def test_load_with_explicit_spec_skips_detection(tmp_path: Path) -> None:
    net = zoo.create("timm:test_resnet", num_classes=3)
    path = tmp_path / "resnet.safetensors"
    save_file(net.state_dict(), str(path))
    spec = zoo.describe(net)
    loaded = zoo.load(path, spec=spec)
    assert not loaded.training and zoo.describe(loaded) == spec
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(_out(loaded, x), _out(net.eval(), x))
    with pytest.raises(zoo.UnknownArchitectureError):
        zoo.load(path)
    with pytest.raises(zoo.CheckpointError, match=r"resnet\.safetensors.*timm:test_resnet"):
        zoo.load(path, spec={"architecture": "timm:test_resnet", "kwargs": {"num_classes": 4}})
