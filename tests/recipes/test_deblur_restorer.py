"""The deblur recipe's stage 1: the plain network is fine-tuned to restore once, saved, and read back."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tunify.recipes import apply_overrides, apply_preset, deblur, load_config
from tunify.recipes._config import config_path


def staged_config(weights: str) -> dict:
    cfg = apply_preset(load_config(config_path("deblur")), "smoke")
    return apply_overrides(
        cfg,
        [
            "train.device=cpu",
            "train.batch_size=2",
            "data.patch_size=24",
            "restorer.total_steps=1",
            "restorer.warmup_steps=0",
            "restorer.lr=1e-3",
            f"restorer.weights={weights}",
        ],
    )


def test_restorer_is_trained_once_then_read_back(shared, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    weights = tmp_path / "restorer.safetensors"
    cfg = staged_config(str(weights))
    plain = deblur.build_denoiser(cfg).state_dict()
    trained = deblur.build_model(cfg).state_dict()
    assert weights.is_file()
    assert any(not torch.equal(trained[k], plain[k]) for k in plain)  # one step at lr 1e-3 moved it

    def no_training(*args, **kwargs):
        raise AssertionError("stage 1 must be read back, not retrained")

    monkeypatch.setattr(deblur, "Trainer", no_training)
    again = deblur.build_model(cfg).state_dict()
    assert all(torch.equal(again[k], trained[k]) for k in trained)

    save_file({"model.0.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(ValueError, match=r"do not match model\.init.s network"):
        deblur.build_model(cfg)


def test_restorer_path_names_the_stage_config():
    cfg = apply_preset(load_config(config_path("deblur")), None)
    default = deblur.restorer_path(cfg)
    assert default.parent.as_posix() == "runs/deblur-restorer" and default.suffix == ".safetensors"
    assert deblur.restorer_path(apply_overrides(cfg, ["restorer.lr=3e-4"])) != default
    assert deblur.restorer_path(apply_overrides(cfg, ["model.anchor=null"])) == default  # not part of stage 1
    how_it_runs = [
        "train.num_workers=8",
        "train.progress=false",
        "train.channels_last=true",
        "train.device=cpu",
    ]
    assert deblur.restorer_path(apply_overrides(cfg, how_it_runs)) == default
    assert deblur.restorer_path(apply_overrides(cfg, ["train.precision=bf16"])) != default
    assert (
        deblur.restorer_path(apply_overrides(cfg, ["restorer.weights=x/r.safetensors"])).name
        == "r.safetensors"
    )


def test_an_interrupted_restorer_resumes_from_its_last_checkpoint(shared, tmp_path, monkeypatch):
    """Stage 1 is the long part (100,000 steps): a run stopped during it continues from its checkpoints in
    ``<weights>-run/`` and ends where an uninterrupted run ends."""
    torch.set_num_threads(1)
    steps = ["restorer.total_steps=4", "train.checkpoint_every=2"]
    whole = apply_overrides(staged_config(str(tmp_path / "whole" / "r.safetensors")), steps)
    expected = deblur.build_model(whole).state_dict()

    cfg = apply_overrides(staged_config(str(tmp_path / "stopped" / "r.safetensors")), steps)
    loss = deblur.multi_loss

    class Stopped(RuntimeError):
        pass

    def stops_at_step_4(config):
        inner, calls = loss(config), []

        def stopping(*args):
            calls.append(1)
            if len(calls) == 4:
                raise Stopped
            return inner(*args)

        return stopping

    monkeypatch.setattr(deblur, "multi_loss", stops_at_step_4)
    with pytest.raises(Stopped):
        deblur.build_model(cfg)
    assert not (tmp_path / "stopped" / "r.safetensors").exists()
    assert (tmp_path / "stopped" / "r-run" / "checkpoints").is_dir()
    monkeypatch.setattr(deblur, "multi_loss", loss)
    resumed = deblur.build_model(cfg).state_dict()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
