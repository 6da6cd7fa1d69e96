"""Recipe configs: every YAML loads with its presets, and overrides are checked against existing keys and types."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tunify.recipes import RECIPES, ConfigError, apply_overrides, apply_preset, load_config
from tunify.recipes._config import RECIPES_DIR, config_path
from tunify.recipes._run import train_config
from tunify.train import TrainConfig

BASE = {
    "p": 2,
    "train": {"lr": 1.0e-4, "total_steps": 10, "ema_decay": None, "progress": True},
    "sizes": [1, 2],
}


def test_overrides_parse_yaml_values_and_widen_ints():
    cfg = apply_overrides(
        BASE, ["train.lr=2e-4", "train.total_steps=20", "sizes=[3, 4]", "train.ema_decay=0.99"]
    )
    assert cfg["train"] == {"lr": 2e-4, "total_steps": 20, "ema_decay": 0.99, "progress": True}
    assert cfg["sizes"] == [3, 4]
    assert apply_overrides(BASE, {"train.lr": 1})["train"]["lr"] == 1.0
    assert apply_overrides(BASE, ["sizes.1=7"])["sizes"] == [1, 7]
    assert BASE["train"]["lr"] == 1.0e-4  # the input is not modified


def test_unknown_key_names_it_and_lists_close_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.lrr'.*train\.lr"):
        apply_overrides(BASE, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        apply_overrides(BASE, ["nope=1"])


@pytest.mark.parametrize(
    "override", ["train.lr=abc", "train.total_steps=1.5", "train.progress=1", "sizes=3", "p=[1]"]
)
def test_wrong_type_is_an_error_naming_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"'{key}' expects"):
        apply_overrides(BASE, [override])


def test_malformed_override():
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        apply_overrides(BASE, ["train.lr"])


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_config_loads_with_its_presets(name):
    cfg = load_config(config_path(name))
    for preset in ("full", *cfg.get("presets", {})):
        resolved = apply_preset(cfg, preset)
        assert "presets" not in resolved
        assert resolved["p"] == len(resolved.get("loss_weights") or []) or name == "deblur"
    with pytest.raises(ConfigError, match="unknown preset"):
        apply_preset(cfg, "huge")


def test_configs_ship_inside_the_package() -> None:
    """``tunify/recipes/configs`` is the repository's ``recipes/`` (a link), so wheels carry the YAML files."""
    repo_configs = Path(__file__).resolve().parents[2] / "recipes"
    shipped = sorted(p.name for p in RECIPES_DIR.glob("*.yaml"))
    assert shipped == sorted(p.name for p in repo_configs.glob("*.yaml"))
    assert {
        "denoise.yaml",
        "deblur.yaml",
        "swinir_sr.yaml",
        "swinir_dn.yaml",
        "nafnet_dn.yaml",
        "style.yaml",
    } <= set(shipped)
    assert config_path("denoise").read_bytes() == (repo_configs / "denoise.yaml").read_bytes()
    pyproject = (repo_configs.parent / "pyproject.toml").read_text()
    assert '"recipes/configs/*.yaml"' in pyproject


@pytest.mark.parametrize("name", RECIPES)
def test_every_preset_shows_progress_and_smoke_says_it_is_not_a_result(name):
    base = load_config(config_path(name))
    for preset in ["full", *base.get("presets", {})]:
        cfg = apply_preset(base, preset)
        assert cfg["train"]["progress"] is True, f"{name} --preset {preset} hides its progress"
        assert (preset == "smoke") == bool(cfg["note"]), f"{name} --preset {preset}: note {cfg['note']!r}"
    assert "not a result" in apply_preset(base, "smoke")["note"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_trainer_option_can_be_set_from_the_command_line(name):
    """Overrides may only change keys the YAML has, so each recipe lists every TrainConfig field it can use
    (not ``version``, the layout's own, nor ``eval_every``: recipes sweep once, after training)."""
    cfg = load_config(config_path(name))
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"version", "eval_every"}
    adversarial = name == "swinir_sr"
    missing = fields - set(cfg["train"]) - (set() if adversarial else {"discriminator_lr"})
    assert not missing, f"recipes/{name}.yaml: train lacks {sorted(missing)}"
    config = train_config(apply_overrides(cfg, ["train.precision=bf16", "train.keep_checkpoints=5"]))
    assert (config.precision, config.keep_checkpoints) == ("bf16", 5)
    with pytest.raises(ValueError, match="precision must be one of"):
        train_config(apply_overrides(cfg, ["train.precision=fp8"]))
