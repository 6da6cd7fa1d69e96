"""The brush's ω map and the synthetic degradation, without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunify.app import mask_from_layers, omega_map
from tunify.app.synthetic import SyntheticDegradation


def layer(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    top, left, bottom, right = box
    out[top:bottom, left:right] = (255, 0, 0, 255)
    return out


def test_painted_layers_make_a_mask_at_the_input_size() -> None:
    layers = [layer(8, 8, (0, 0, 2, 2)), None, layer(8, 8, (6, 6, 8, 8)), np.zeros((8, 8, 3), np.uint8)]
    mask = mask_from_layers(layers, (8, 8))
    assert mask is not None and mask.sum() == 8 and mask[0, 0] == 1 and mask[7, 7] == 1 and mask[4, 4] == 0
    big = mask_from_layers(layers, (16, 16))  # a canvas of another size: nearest, stays 0/1
    assert (
        big is not None and big.shape == (16, 16) and big.sum() == 32 and set(big.unique().tolist()) == {0, 1}
    )
    assert mask_from_layers([np.zeros((8, 8, 4), np.uint8)], (8, 8)) is None
    assert mask_from_layers([], (8, 8)) is None


def test_omega_map_puts_the_region_omega_where_painted() -> None:
    mask = torch.zeros(4, 5)
    mask[1:3, 2:4] = 1
    w = omega_map([0.7, 0.3], [0.1, 0.9], mask)
    assert w.shape == (1, 2, 4, 5)
    assert torch.equal(w[0, :, 0, 0], torch.tensor([0.7, 0.3]))
    assert torch.allclose(w[0, :, 1, 2], torch.tensor([0.1, 0.9]))
    assert torch.allclose(w.sum(1), torch.ones(1, 4, 5))
    with pytest.raises(ValueError, match="entries"):
        omega_map([0.5, 0.5], [1.0], mask)


def synthetic(degradation: object, model_scale: int = 1) -> SyntheticDegradation:
    config = {"p": 2, "info": {"training": {"degradation": degradation}}}
    return SyntheticDegradation.from_config(config, model_scale)


def test_the_recipes_noise_at_a_chosen_level_is_the_same_every_call() -> None:
    s = synthetic({"name": "noise", "sigma": [5.0, 30.0]})
    (knob,) = s.knobs
    assert knob.key == "sigma" and knob.value == 25.0 and knob.maximum == 75.0
    clean = torch.full((1, 3, 16, 16), 0.5)
    a, b = s.apply(clean, [10.0]), s.apply(clean, [10.0])
    assert torch.equal(a, b) and (a - clean).std().item() == pytest.approx(10 / 255, rel=0.2)
    with pytest.raises(ValueError, match="noise σ"):
        s.apply(clean, [100.0])


def test_deblurring_models_get_blur_and_noise_levels() -> None:
    s = synthetic({"name": "blur_noise", "rho": [0.0, 4.0], "sigma": [5.0, 30.0], "kernel_size": 21})
    assert [k.key for k in s.knobs] == ["sigma", "rho"] and s.kind == "blur + noise"
    clean = torch.rand(1, 3, 32, 32)
    blurred = s.apply(clean, [0.0, 3.0])
    assert blurred.std() < clean.std() * 0.7  # blur removes detail; σ = 0 adds nothing
    assert "rho=3.0" in s.describe([0.0, 3.0]) and "sigma=0.0" in s.describe([0.0, 3.0])


def test_super_resolution_downsamples_by_the_network_scale_and_other_models_without_a_recipe_get_noise() -> (
    None
):
    s = synthetic({"name": "downsample", "scale": 4}, model_scale=4)
    assert s.scale == 4 and s.knobs == () and s.kind == "downsample ×4"
    assert s.apply(torch.rand(1, 3, 18, 21), []).shape == (1, 3, 4, 5)  # cropped to 16x20 first
    plain = synthetic(None)
    assert [k.key for k in plain.knobs] == ["sigma"] and plain.scale == 1
    assert [k.key for k in synthetic({"name": "no-such-thing"}).knobs] == ["sigma"]
    # an upscaling network whose recipe is unknown, or says otherwise: bicubic by the network's own scale
    for recorded in (None, {"name": "noise", "sigma": 10.0}, {"name": "downsample", "scale": 4}):
        s = synthetic(recorded, model_scale=2)
        assert (
            s.scale == 2 and s.kind == "downsample ×2" and s.apply(torch.rand(1, 3, 8, 8), []).shape[-1] == 4
        )
