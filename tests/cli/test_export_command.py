"""``tunify export``: a saved model (or the embedded one) to ONNX, ω baked or live; one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tunify
from tests.conftest import tiny_dncnn
from tunify.cli import main
from tunify.hub import save_pretrained

onnx = pytest.importorskip("onnx", reason="ONNX export tests need pip install 'tunify[export]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need pip install 'tunify[export]'")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[tunify.TunableModel, Path]:
    tmodel = tiny_dncnn()
    tmodel.info = {
        "objectives": [{"name": "fidelity", "omega_index": 0, "description": "denoising strength"}]
    }
    return tmodel, save_pretrained(tmodel, tmp_path_factory.mktemp("model") / "tiny")


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tunify: error: ") and "Traceback" not in err
    return err


def test_export_baked_from_a_saved_model(saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmodel, folder = saved
    out = tmp_path / "plain.onnx"
    assert main(["export", str(folder), "-o", str(out), "--omega", "0.8,0.2"]) == 0
    printed = capsys.readouterr().out
    assert "baked at ω = (0.8,0.2)" in printed
    assert "ω1: fidelity: denoising strength" in printed and "ω2: omega2: not documented" in printed
    session = ort.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ["x"]  # ω is baked in: one input
    x = torch.rand(1, 3, 18, 22)
    with torch.no_grad():
        expected = tmodel(x, omega=torch.tensor([0.8, 0.2])).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], expected, atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["tunify.omega.baked"]) == pytest.approx([0.8, 0.2])
    assert meta["tunify.mix"] == "baked" and meta["tunify.omega.input"] == ""


def test_export_errors_are_one_line(
    saved, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = saved
    out = str(tmp_path / "m.onnx")
    assert "--spatial needs --mix outputs" in _error(capsys, ["export", str(folder), "-o", out, "--spatial"])
    err = _error(capsys, ["export", str(folder), "-o", out, "--omega", "1,0", "--mix", "outputs"])
    assert "--omega bakes ω in" in err
    assert "give 2" in _error(capsys, ["export", str(folder), "-o", out, "--omega", "1"])
    assert ".onnx or .pt2" in _error(capsys, ["export", str(folder), "-o", str(tmp_path / "m.bin")])
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a)
    )
    # MODEL omitted: the embedded model loads, then the missing package is named with the pip command
    assert "pip install 'tunify[export]'" in _error(capsys, ["export", "-o", out])
    assert not Path(out).exists()


def test_batch_and_size_set_the_trace_example(
    saved, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Networks whose own code fixes the batch (HAT, DAT, …) keep the trace's: an app running one image at
    a time exports with --batch 1. A network that takes one size only is traced at --size."""
    _, folder = saved
    seen = []
    monkeypatch.setattr(
        "tunify.cli.export.export", lambda *a, example, **k: seen.append(example) or Path("m")
    )
    assert main(["export", str(folder), "-o", str(tmp_path / "m.pt2"), "--batch", "1"]) == 0
    assert main(["export", str(folder), "-o", str(tmp_path / "m.pt2")]) == 0
    assert main(["export", str(folder), "-o", str(tmp_path / "m.pt2"), "--size", "24,40"]) == 0
    assert main(["export", str(folder), "-o", str(tmp_path / "m.pt2"), "--size", "32"]) == 0
    assert [tuple(x.shape) for x in seen] == [(1, 3, 67, 61), (2, 3, 67, 61), (2, 3, 24, 40), (2, 3, 32, 32)]
    for bad in ("0,4", "4,4,4", "a,b"):
        assert "expected H,W" in _error(capsys, ["export", str(folder), "-o", "m.pt2", "--size", bad])
    assert "--batch must be at least 1" in _error(
        capsys, ["export", str(folder), "-o", "m.pt2", "--batch", "0"]
    )
