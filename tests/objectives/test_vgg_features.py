from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from tunify.objectives import VGG19_LAYERS, VGGFeatures, VGGWeightsError


def test_layer_names_follow_vgg19_numbering():
    assert VGG19_LAYERS["conv1_1"] == 0
    assert VGG19_LAYERS["relu3_3"] == 15
    assert VGG19_LAYERS["conv5_4"] == 34
    assert VGG19_LAYERS["pool5"] == 36


def test_pre_activation_taps_are_not_overwritten_by_relu():
    torch.manual_seed(0)
    vgg = VGGFeatures(("conv3_3", "relu3_3"), pretrained=False)
    out = vgg(torch.rand(1, 3, 16, 16))
    assert out["conv3_3"].min() < 0, "conv3_3 must be the pre-activation output"
    torch.testing.assert_close(out["relu3_3"], out["conv3_3"].clamp_min(0))
    assert len(vgg.features) == VGG19_LAYERS["relu3_3"] + 1


def test_frozen_eval_but_gradients_reach_input():
    vgg = VGGFeatures(("conv5_4",), pretrained=False)
    vgg.train()
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["conv5_4"].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_round_trip(tmp_path, suffix):
    source = VGGFeatures(("relu3_3",), pretrained=False)
    state = {f"features.{k}": v.contiguous() for k, v in source.features.state_dict().items()}
    state["head.fc.weight"] = torch.zeros(2, 2)  # extra keys of a full checkpoint are ignored
    path = tmp_path / f"vgg19{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = VGGFeatures(("relu3_3",), weights_path=path)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x)["relu3_3"], source(x)["relu3_3"])


def test_local_weights_missing_keys_raise(tmp_path):
    path = tmp_path / "partial.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, str(path))
    with pytest.raises(ValueError, match=r"lacks features\.0\.bias"):
        VGGFeatures(("relu1_1",), weights_path=path)
    with pytest.raises(FileNotFoundError):
        VGGFeatures(("relu1_1",), weights_path=tmp_path / "absent.safetensors")


def test_download_failure_names_the_offline_options(monkeypatch):
    def offline(name, pretrained=False, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(VGGWeightsError, match=r"vgg_weights=.*pretrained=False"):
        VGGFeatures(("conv5_4",), pretrained=True)


def test_unknown_layer_raises():
    with pytest.raises(ValueError, match="conv6_1"):
        VGGFeatures(("conv6_1",), pretrained=False)
