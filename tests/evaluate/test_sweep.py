from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tunify.data import ImageFolderEval, build_degradation
from tunify.evaluate import omega_grid, psnr, sweep


class MixModel(nn.Module):
    """ω2 keeps the input, ω1 replaces it with a flat grey: PSNR and PSNR_η are known at the ends of the line."""

    p = 2

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(omega.shape))
        w = omega if omega.ndim == 2 else omega.expand(x.shape[0], -1)  # [B, p]
        return w[:, 1].view(-1, 1, 1, 1) * x + w[:, 0].view(-1, 1, 1, 1) * 0.5


@pytest.fixture
def tiny_set(tmp_path: Path) -> ImageFolderEval:
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(tmp_path / f"t{i}.png")
    return ImageFolderEval(tmp_path, build_degradation({"name": "noise", "sigma": 25}), seed=0)


def test_omega_grids() -> None:
    assert omega_grid(1).shape == (5, 1)
    line = omega_grid(2)
    assert line.shape == (5, 2) and torch.equal(line.sum(1), torch.ones(5, dtype=line.dtype))
    assert line[1].tolist() == [0.25, 0.75]
    assert omega_grid(2, mode="full").shape == (25, 2)
    assert omega_grid(3).shape == (4, 3) and omega_grid(3)[-1].tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="mode"):
        omega_grid(2, mode="diagonal")


def test_sweep_writes_the_four_outputs(tiny_set: ImageFolderEval, tmp_path: Path) -> None:
    model = MixModel().train()
    out = tmp_path / "report"
    rows = sweep(model, tiny_set, out_dir=out, max_batch=3, strip_crop=16, progress=False)
    for name in ("sweep.json", "sweep.md", "psnr_vs_omega.png", "tuning_strip.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "sweep.json").read_text())
    assert saved == rows and len(rows) == 5
    for row in rows:
        assert {"omega", "dataset", "degradation", "psnr", "psnr_eta", "ssim"} <= set(row)
        assert len(row["per_image"]["psnr"]) == 2 and row["per_image"]["name"] == ["t0", "t1"]
        assert row["psnr"] == pytest.approx(np.mean(row["per_image"]["psnr"]))
    assert rows[0]["degradation"] == "noise(sigma=25.0, clip=False)"
    assert "| (0.25, 0.75) |" in (out / "sweep.md").read_text()
    assert model.training and model.calls == [(3, 2), (2, 2)] * 2  # two batched forwards per image
    assert Image.open(out / "tuning_strip.png").size[0] > 7 * 16  # input + 5 ω + clean
    assert "note" not in rows[0] and not (out / "sweep.md").read_text().startswith(">")
    noted = sweep(model, tiny_set, [[1, 0]], out_dir=tmp_path / "n", progress=False, note="pipeline check")
    assert (
        noted[0]["note"]
        == "pipeline check"
        == json.loads((tmp_path / "n" / "sweep.json").read_text())[0]["note"]
    )
    assert (tmp_path / "n" / "sweep.md").read_text().startswith("> **pipeline check**\n")


def test_sweep_values_at_the_ends_and_shared_omega(tiny_set: ImageFolderEval) -> None:
    rows = sweep(MixModel(), tiny_set, progress=False)
    noisy = [psnr(it["input"], it["clean"]).item() for it in tiny_set]
    keep, grey = rows[0], rows[-1]  # ω = (0, 1) returns the input, ω = (1, 0) flat grey
    assert keep["per_image"]["psnr"] == pytest.approx(noisy)
    assert keep["psnr_eta"] > keep["psnr"] + 10  # the target keeps 90% of the noise
    assert grey["psnr_eta"] == grey["psnr"]
    model = MixModel()
    shared = sweep(model, tiny_set, per_sample=False, progress=False)
    assert set(model.calls) == {(2,)}
    for a, b in zip(rows, shared, strict=True):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-9) and a["ssim"] == pytest.approx(
            b["ssim"], abs=1e-9
        )


def test_forward_override_and_explicit_omegas(tiny_set: ImageFolderEval) -> None:
    seen: list[torch.Tensor] = []

    def forward(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        seen.append(omega)
        return x

    rows = sweep(nn.Identity(), tiny_set, [[0.2, 0.8, 0.0]], forward=forward, progress=False)
    assert len(rows) == 1 and rows[0]["omega"] == pytest.approx([0.2, 0.8, 0.0])
    assert seen[0].shape == (1, 3)
    with pytest.raises(ValueError, match="p = 2"):
        sweep(MixModel(), tiny_set, [[0.2, 0.8, 0.0]], progress=False)
    with pytest.raises(ValueError, match="pass omegas or p"):
        sweep(nn.Identity(), tiny_set, progress=False)


class UpscaleModel(MixModel):
    """×2 nearest upscaling of the mix: output and input sizes differ, as in super-resolution."""

    def forward(self, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(super().forward(x, omega), scale_factor=2, mode="nearest")


def test_sweep_super_resolution_sizes(tmp_path: Path) -> None:
    """Without an ω-dependent target (sizes differ), PSNR_η is the PSNR against the high-resolution image."""
    hr = torch.rand(3, 16, 20)
    lr = hr[:, ::2, ::2]
    rows = sweep(UpscaleModel(), [{"input": lr, "clean": hr}], out_dir=tmp_path, progress=False)
    assert all(row["psnr_eta"] == row["psnr"] for row in rows)
    assert (tmp_path / "tuning_strip.png").is_file()


def test_psnr_eta_with_blur_keeps_the_noise_not_the_blur(tmp_path: Path) -> None:
    """With blur + noise, the noise-preserving target is clean + ν·ω2·noise: the blur is not kept."""
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    data = ImageFolderEval(
        tmp_path, build_degradation({"name": "blur_noise", "rho": 2.0, "sigma": 25.0}), seed=0
    )
    item = data[0]
    sharp_noisy = item["clean"] + 0.9 * item["noise"]  # the training target at ω = (0, 1)

    def ideal(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        return sharp_noisy.expand(x.shape[0], -1, -1, -1)

    (row,) = sweep(MixModel(), data, omegas=torch.tensor([[0.0, 1.0]]), forward=ideal, progress=False)
    assert row["psnr_eta"] > 60  # equal to the target up to 8-bit rounding
    blurred_target = item["clean"] + 0.9 * (item["input"] - item["clean"])
    assert psnr(sharp_noisy.clamp(0, 1), blurred_target.clamp(0, 1)).item() < 40  # the old target differs


def test_a_network_that_writes_into_its_input_is_scored_on_the_input_at_every_omega(
    tiny_set: ImageFolderEval,
) -> None:
    from tests.cli.test_tiling import _ScalesItsInput, _tunable

    tmodel = _tunable(_ScalesItsInput())
    rows = sweep(tmodel, tiny_set, omegas=[[0.2, 0.8], [0.2, 0.8]], progress=False)  # the same ω twice
    assert rows[0]["psnr"] == pytest.approx(rows[1]["psnr"], abs=1e-9)


class _OnMeta(MixModel):
    """A model whose weights live on another device than the dataset ("meta" stands in for a GPU): it records
    where its input arrives and answers on the CPU, as a GPU model's output is copied back."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1, device="meta"))
        self.devices: set[torch.device] = set()

    def forward(self, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        self.devices.add(x.device)
        self.devices.add(omega.device)
        return torch.zeros(x.shape[0], *x.shape[1:])


def test_inputs_go_to_the_model_s_device(tiny_set: ImageFolderEval) -> None:
    """A network trained on a GPU is swept there without naming the device (the recipes' evaluation)."""
    model = _OnMeta()
    sweep(model, tiny_set, omegas=[[1.0, 0.0]], progress=False)
    assert model.devices == {torch.device("meta")}
    model.devices.clear()
    sweep(model, tiny_set, omegas=[[1.0, 0.0]], progress=False, device="cpu")  # an explicit device wins
    assert model.devices == {torch.device("cpu")}
    plain = MixModel()  # no tensors: the input's device
    (row,) = sweep(plain, tiny_set, omegas=[[0.0, 1.0]], progress=False)
    assert row["psnr"] > 15  # ω2 = 1 returns the noisy input
