"""ONNX export checked with ONNX Runtime: |onnx − torch| ≤ 1e-4 at five ω and two input sizes.

Each network is exported once per form (module-scoped cache); the exports dominate the run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from export_testdata import ATOL, OMEGAS, SIZES, P, inputs, tiny

import tunify

onnx = pytest.importorskip("onnx", reason="ONNX export tests need pip install 'tunify[export]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need pip install 'tunify[export]'")

# DnCNN runs in the quick suite; the transformer, U-Net and timm exports take seconds each (symbolic tracing).
NETWORKS = ["dncnn", *(pytest.param(n, marks=pytest.mark.slow) for n in ("nafnet", "swinir", "timm"))]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``get(name, **export_kwargs)`` -> (tmodel, onnx path, session), each export made once per module."""
    cache: dict = {}
    folder = tmp_path_factory.mktemp("onnx")

    def get(name: str, **kwargs: object) -> tuple[tunify.TunableModel, Path, ort.InferenceSession]:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            tmodel = tiny(name)
            path = tunify.export(tmodel, folder / f"{name}-{len(cache)}.onnx", **kwargs)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            cache[key] = (tmodel, path, ort.InferenceSession(str(path), options))
        return cache[key]

    return get


def _run(session: ort.InferenceSession, **feeds: torch.Tensor) -> np.ndarray:
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]


def _torch(tmodel: tunify.TunableModel, x: torch.Tensor, omega: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return tmodel(x, omega=omega).numpy()


@pytest.mark.parametrize("name", NETWORKS)
def test_weights_mix_matches_torch(exports, name: str) -> None:
    tmodel, _, session = exports(name)
    assert [i.name for i in session.get_inputs()] == ["x", "omega"]
    assert session.get_inputs()[1].shape == [P]
    ys = []
    for size in SIZES:
        x = inputs(size)
        for values in OMEGAS:
            omega = torch.tensor(values)
            y = _run(session, x=x, omega=omega)
            np.testing.assert_allclose(y, _torch(tmodel, x, omega), atol=ATOL, rtol=0)
            ys.append(y)
    assert np.abs(ys[0] - ys[len(OMEGAS) - 1]).max() > 1e-3  # ω reaches the graph


@pytest.mark.parametrize("name", NETWORKS)
def test_outputs_mix_matches_torch_per_sample(exports, name: str) -> None:
    tmodel, _, session = exports(name, mix="outputs")
    assert session.get_inputs()[1].shape == ["batch", P]
    for size in SIZES:
        x = inputs(size)
        for i in range(len(OMEGAS)):
            # one ω per sample: rows i, i+1, ... of the five
            omega = torch.tensor([OMEGAS[(i + k) % len(OMEGAS)] for k in range(x.shape[0])])
            np.testing.assert_allclose(
                _run(session, x=x, omega=omega), _torch(tmodel, x, omega), atol=ATOL, rtol=0
            )


@pytest.mark.parametrize(
    "name", ["dncnn", *(pytest.param(n, marks=pytest.mark.slow) for n in ("nafnet", "swinir"))]
)
def test_spatial_export_matches_torch_spatial_path(exports, name: str) -> None:
    tmodel, _, session = exports(name, mix="outputs", spatial=True)
    assert session.get_inputs()[1].shape == ["batch", P, "height", "width"]
    g = torch.Generator().manual_seed(1)
    for size in SIZES:
        x = inputs(size)
        first = torch.rand(x.shape[0], 1, *x.shape[2:], generator=g)
        omega_map = torch.cat([first, 1 - first], dim=1)  # on the simplex at every pixel
        np.testing.assert_allclose(
            _run(session, x=x, omega=omega_map), _torch(tmodel, x, omega_map), atol=ATOL, rtol=0
        )


def test_metadata_describes_omega_and_sizes_are_dynamic(exports) -> None:
    _, path, session = exports("dncnn")
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["tunify.p"] == str(P)
    assert meta["tunify.omega.input"] == "omega"
    assert json.loads(meta["tunify.omega.shape"]) == [P]
    assert meta["tunify.omega.semantics"] == "simplex"
    assert meta["tunify.omega.range"] == "[0, 1]"
    assert meta["tunify.mix"] == "weights"
    assert meta["tunify.base"] == "DnCNN"
    assert meta["tunify.task"] == "denoising"
    objectives = json.loads(meta["tunify.objectives"])
    assert [(o["omega_index"], o["name"]) for o in objectives] == [
        (0, "reconstruction"),
        (1, "noise_preservation"),
    ]
    assert "reconstruction" in model.doc_string
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert session.get_outputs()[0].shape == ["batch", 3, "height", "width"]
