"""Each recipe builds its smoke configuration and takes one training step on tiny tensors."""

from __future__ import annotations

import importlib

import pytest
import torch

from tunify.hub import validate_info
from tunify.recipes import RECIPES, apply_overrides, apply_preset, load_config
from tunify.recipes._config import config_path
from tunify.recipes._run import build


def smoke_config(name: str) -> dict:
    return apply_overrides(apply_preset(load_config(config_path(name)), "smoke"), ["train.device=cpu"])


@pytest.mark.parametrize("name", RECIPES)
def test_build_and_one_training_step(name, shared):
    torch.set_num_threads(1)
    recipe = importlib.import_module(f"tunify.recipes.{name}").RECIPE
    cfg = smoke_config(name)
    with (
        pytest.warns(UserWarning, match="randomly initialised VGG")
        if name in ("swinir_sr", "style")
        else _none()
    ):
        built = build(recipe, cfg)
    assert built.model.p == cfg["p"] and built.model.info["training"]["recipe"] == name
    validate_info(built.model.info)
    size = 16
    clean = torch.rand(2, 3, size, size)
    low = (
        clean[..., :: cfg["scale"], :: cfg["scale"]]
        if name == "swinir_sr"
        else clean + 0.05 * torch.randn_like(clean)
    )
    batch = {"input": low, "clean": clean}
    omega = built.sampler(2)
    assert omega.shape == (2, cfg["p"])
    out = built.model(batch["input"], omega=omega)
    assert out.shape == clean.shape
    loss, _ = built.loss(out, batch, omega)
    loss.backward()
    grads = [p.grad for p in built.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    if built.loss.has_discriminator:
        built.loss.discriminator_step_loss(out, batch).backward()


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
