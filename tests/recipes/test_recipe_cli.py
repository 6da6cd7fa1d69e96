"""Every recipe has a working ``--help`` and rejects bad overrides with the key in the message."""

from __future__ import annotations

import importlib
import runpy
import sys

import pytest

from tunify.recipes import RECIPES
from tunify.recipes._cli import main


@pytest.mark.parametrize("name", RECIPES)
def test_help(name, capsys):
    recipe = importlib.import_module(f"tunify.recipes.{name}").RECIPE
    with pytest.raises(SystemExit) as exit_info:
        main(recipe, ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--preset", "--init", "--train-dir", "--val-dir", "--out", "--push-to-hub", "train.lr"):
        assert option in text


def test_module_entry_point_help(monkeypatch, capsys):
    """``python -m tunify.recipes.denoise --help``: the module's ``__main__`` block, run in this process."""
    monkeypatch.setattr(sys, "argv", ["denoise", "--help"])
    monkeypatch.delitem(
        sys.modules, "tunify.recipes.denoise", raising=False
    )  # as a fresh `python -m` sees it
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("tunify.recipes.denoise", run_name="__main__")
    assert exit_info.value.code == 0 and "noise preservation" in capsys.readouterr().out


def test_bad_override_exits_with_the_key(capsys):
    from tunify.recipes.denoise import RECIPE

    with pytest.raises(SystemExit):
        main(RECIPE, ["--print-config", "train.lrr=1"])
    assert "train.lrr" in capsys.readouterr().err


def test_inconsistent_train_settings_are_a_usage_error(capsys):
    from tunify.recipes.denoise import RECIPE

    with pytest.raises(SystemExit) as exit_info:
        main(RECIPE, ["--print-config", "train.total_steps=6", "train.warmup_steps=10"])
    assert exit_info.value.code == 2
    assert "train: warmup_steps (10) must be < total_steps (6)" in capsys.readouterr().err


def test_print_config_applies_preset_options_and_overrides(capsys):
    from tunify.recipes.denoise import RECIPE

    assert main(RECIPE, ["--print-config", "--preset", "smoke", "--init", "scratch", "train.lr=3e-4"]) == 0
    text = capsys.readouterr().out
    assert "init: scratch" in text and "lr: 0.0003" in text and "total_steps: 20" in text


def test_overrides_may_sit_between_options(capsys):
    from tunify.recipes.denoise import RECIPE

    argv = ["train.lr=3e-4", "--print-config", "--val-dir", "some/images", "eval.crop=64"]
    assert main(RECIPE, argv) == 0
    text = capsys.readouterr().out
    assert "lr: 0.0003" in text and "val_dir: some/images" in text and "crop: 64" in text


def test_missing_official_init_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from tunify.recipes.nafnet_dn import RECIPE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache; NAFNet has no direct link
    with pytest.raises(SystemExit) as exit_info:
        main(RECIPE, ["--out", str(tmp_path / "run"), "train.total_steps=2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        "model.init='NAFNet-SIDD-width32.pth'" in err and "--init scratch" in err and "Traceback" not in err
    )
