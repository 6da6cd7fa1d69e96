"""One real end-to-end run of the denoise recipe: train a few steps, sweep, write the publishable folder."""

from __future__ import annotations

import json

import pytest
import torch

from tunify.recipes import apply_overrides, apply_preset, load_config
from tunify.recipes._base import run
from tunify.recipes._config import config_path
from tunify.recipes.denoise import RECIPE


def test_denoise_end_to_end(shared, tmp_path):
    hub = pytest.importorskip(
        "tunify.hub", reason="tunify.hub (save_pretrained / from_pretrained) not there yet"
    )
    torch.set_num_threads(1)
    cfg = apply_overrides(
        apply_preset(load_config(config_path("denoise")), "smoke"),
        [
            "train.total_steps=3",
            "train.checkpoint_every=3",
            "train.device=cpu",
            "data.patch_size=24",
            "eval.max_images=2",
            "eval.crop=40",
        ],
    )
    folder = run(RECIPE, cfg, tmp_path)
    assert list((tmp_path / "checkpoints").iterdir())
    for name in ("sweep.json", "sweep.md", "psnr_vs_omega.png", "tuning_strip.png", "weights.safetensors"):
        assert (tmp_path / name).is_file(), name
    rows = json.loads((tmp_path / "sweep.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert len(rows) == 5 and rows[0]["n_images"] == 2
    loaded = hub.from_pretrained(folder)
    x = torch.rand(1, 3, 24, 24)
    omega = torch.tensor([0.3, 0.7])
    assert loaded.p == 2
    assert torch.isfinite(loaded(x, omega=omega)).all()
