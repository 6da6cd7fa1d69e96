"""`tunify.zoo.create` / `list` / `config`: named configurations build the published networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from tunify import zoo

REQUIRED = [
    "swinir_classical_x2",
    "swinir_classical_x3",
    "swinir_classical_x4",
    "swinir_lightweight_x2",
    "swinir_lightweight_x3",
    "swinir_lightweight_x4",
    "swinir_real_x4",
    "swinir_color_dn",
    "swinir_gray_dn",
    "nafnet_sidd_w32",
    "nafnet_gopro_w64",
]
#: Shrinks a SwinIR config to seconds-free size while keeping what defines it (scale, upsampler, channels).
TINY_SWINIR = {"depths": [1, 1], "embed_dim": 12, "num_heads": [2, 2], "img_size": 16}


def test_list_has_required_names_with_descriptions() -> None:
    listed = zoo.list()
    for name in REQUIRED:
        assert listed[name].strip(), name
    assert set(zoo.list("nafnet_*")) == {n for n in listed if n.startswith("nafnet_")}
    assert "timm:test_resnet" in zoo.list("timm:test_res*", timm=True)


@pytest.mark.parametrize("name", sorted(zoo.list()))
def test_every_registered_config_builds(name: str) -> None:
    spec = zoo.config(name)
    if spec.architecture == "NAFNet":
        with torch.device("meta"):  # full size, no memory or init cost
            model = zoo.create(name)
        assert zoo.describe(model)["kwargs"] == {**spec.kwargs}
        return
    model = zoo.create(name, **TINY_SWINIR)
    assert model.training  # fresh networks are for training
    got = zoo.describe(model)
    assert got["name"] == name
    for k in ("upscale", "upsampler", "in_chans", "resi_connection", "window_size"):
        assert got["kwargs"][k] == spec.kwargs[k]
    x = torch.rand(1, spec.kwargs["in_chans"], 9, 11)
    with torch.no_grad():
        y = model.eval()(x)
    s = spec.kwargs["upscale"]
    assert y.shape == (1, spec.kwargs["in_chans"], 9 * s, 11 * s)


def test_official_sizes() -> None:
    """Parameter counts of the papers: SwinIR-M x2 11.75M, NAFNet SIDD w32 29.2M, GoPro w64 67.9M."""
    swinir = zoo.create("swinir_classical_x2")
    assert sum(p.numel() for p in swinir.parameters()) == 11_752_487
    with torch.device("meta"):
        sidd, gopro = zoo.create("nafnet_sidd_w32"), zoo.create("nafnet_gopro_w64")
    assert sum(p.numel() for p in sidd.parameters()) == 29_159_715
    assert sum(p.numel() for p in gopro.parameters()) == 67_888_835


def test_overrides_and_bad_overrides() -> None:
    model = zoo.create("nafnet_sidd_w32", width=8, enc_blk_nums=[1], dec_blk_nums=[1], middle_blk_num=1)
    assert model.hyperparameters["width"] == 8
    with pytest.raises(ValueError, match="widht"):
        zoo.create("nafnet_sidd_w32", widht=8)
    with pytest.raises(ValueError, match="freshly initialised"):
        zoo.create("swinir_classical_x2", pretrained=True)


def test_timm_by_prefix_and_bare_name_round_trip() -> None:
    a = zoo.create("timm:test_resnet", num_classes=5)
    b = zoo.create("test_resnet", num_classes=5)
    assert type(a) is type(b)
    spec = zoo.describe(a)
    assert spec == {"architecture": "timm:test_resnet", "kwargs": {"num_classes": 5}}
    zoo.build(spec).load_state_dict(a.state_dict(), strict=True)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(zoo.UnknownModelError, match="swinir_classical_x2"):
        zoo.create("swinir_clasical_x2")
    with pytest.raises(zoo.UnknownModelError, match="timm:test_resnet"):
        zoo.create("timm:test_resnett")
    with pytest.raises(zoo.UnknownModelError):
        zoo.config("nope")


def test_register_model_decorator() -> None:
    name = "test_zoo_tiny_mlp"

    @zoo.register_model(name, description="a test network")
    def _tiny(width: int = 4) -> nn.Module:
        return nn.Linear(width, width)

    try:
        assert zoo.list()[name] == "a test network"
        assert zoo.create(name, width=3).in_features == 3
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_model(name, description="again")(_tiny)
    finally:
        from tunify.zoo import registry

        registry._REGISTRY.pop(name, None)


def test_describe_refuses_unknown_networks() -> None:
    with pytest.raises(zoo.ZooError, match="cannot describe"):
        zoo.describe(nn.Conv2d(3, 3, 3))
    with pytest.raises(zoo.ZooError, match="unknown architecture"):
        zoo.build({"architecture": "NoSuchNet", "kwargs": {}})
