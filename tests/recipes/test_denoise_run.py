"""One real end-to-end run of the denoise recipe: train a few steps, sweep, write the publishable folder."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

import tunify
from tunify.recipes import apply_overrides, apply_preset, load_config
from tunify.recipes._cli import main
from tunify.recipes._config import config_path
from tunify.recipes._run import build, run
from tunify.recipes.denoise import RECIPE
from tunify.train import DistInfo, load_weights


def test_denoise_end_to_end(shared, tmp_path, capsys):
    torch.set_num_threads(1)
    cfg = apply_overrides(
        apply_preset(load_config(config_path("denoise")), "smoke"),
        [
            "train.total_steps=3",
            "train.warmup_steps=1",
            "train.checkpoint_every=3",
            "train.device=cpu",
            "data.patch_size=24",
            "eval.max_images=2",
            "eval.crop=40",
            "eval.extra=[{dir: ../shared/datasets/Kodak24, degradation: {name: noise, sigma: 50.0}}]",
        ],
    )
    old_umask = os.umask(0o022)
    try:
        folder = run(RECIPE, cfg, tmp_path)
    finally:
        os.umask(old_umask)
    assert "3/3" in capsys.readouterr().err  # the smoke preset shows its progress too
    assert list((tmp_path / "checkpoints").iterdir())
    modes = {p.relative_to(tmp_path): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    wrong = {str(p): oct(m) for p, m in modes.items() if m != (0o755 if (tmp_path / p).is_dir() else 0o644)}
    assert not wrong, f"not the umask's permissions: {wrong}"  # checkpoints were 0600
    for name in ("sweep.json", "sweep.md", "psnr_vs_omega.png", "tuning_strip.png", "weights.safetensors"):
        assert (tmp_path / name).is_file(), name
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["omega"] for r in rows] == [[v, 1 - v] for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(r["n_images"] == 2 for r in rows)
    note = "pipeline check (--preset smoke), not a result: lr 1e-06, 3 steps"
    assert all(r["note"] == note for r in rows) and (tmp_path / "sweep.md").read_text().startswith(
        f"> **{note}**"
    )
    assert (tmp_path / "sweeps" / "01_Kodak24-crop40" / "sweep.md").is_file()
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text()
    assert "### CBSD68-crop40" in card and "### Kodak24-crop40 — noise(sigma=50.0" in card  # every eval set
    assert f"> **{note}**" in card
    assert "original weights: `cdncnn_b_color_blind.pth` (the checkpoint" in card  # was "not given"

    loaded = tunify.from_pretrained(folder)
    assert loaded.info["task"] == "denoising" and loaded.info["metrics"] and loaded.info["note"] == note
    trained = build(RECIPE, cfg).model.eval()
    trained.load_state_dict(load_weights(tmp_path / "weights.safetensors"))
    x, omega = torch.rand(2, 3, 24, 24), torch.tensor([[0.3, 0.7], [1.0, 0.0]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, omega=omega), trained(x, omega=omega))

    # --eval-only takes the published folder (it reads its model.safetensors) as well as the run's weights
    run(RECIPE, cfg, tmp_path / "again", eval_only=True, weights=folder)
    assert json.loads((tmp_path / "again" / "sweep.json").read_text()) == rows


def test_eval_only_with_mismatched_weights_is_a_one_line_error(shared, tmp_path, capsys):
    bad = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(SystemExit) as exit_info:
        main(RECIPE, ["--eval-only", "--weights", str(bad), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad} does not match the converted network" in err and "Traceback" not in err


def test_only_rank_zero_evaluates_and_publishes(shared, tmp_path, monkeypatch):
    """Under torchrun every rank trains; a rank other than 0 must not sweep or write the publishable folder."""
    monkeypatch.setattr("tunify.recipes._run.dist_info", lambda: DistInfo(rank=1, world_size=2))
    cfg = apply_overrides(
        apply_preset(load_config(config_path("denoise")), "smoke"),
        ["train.total_steps=2", "train.warmup_steps=1", "train.device=cpu", "data.patch_size=16"],
    )
    assert run(RECIPE, cfg, tmp_path) == tmp_path / "pretrained"
    assert not any((tmp_path / name).exists() for name in ("config.yaml", "sweep.json", "pretrained"))
    assert (
        run(RECIPE, cfg, tmp_path / "eval", eval_only=True, weights="init")
        == tmp_path / "eval" / "pretrained"
    )
    assert not (tmp_path / "eval").exists()
