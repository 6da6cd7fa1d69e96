"""A freshly converted network computes what the original computed, for every ω, and converts fully."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

import tunify
from tests.conftest import spread_copies
from tests.convert import models


def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=g))
    return model.eval()


def check_model(model: nn.Module, x: torch.Tensor, ps=(1, 2, 3, 4), atol: float = 1e-5, **convert_kw):
    """Equivalence for shared and per-sample ω at each p; once the copies differ (at the last p), the output
    moves with ω, per-sample ω equals each sample alone, and bake equals the tunable model. ``atol`` is for
    outputs of magnitude up to 1 (a randomly initialised classifier's logits can reach thousands)."""
    with torch.no_grad():
        reference = model(x)
    atol *= max(1.0, reference.abs().max().item())  # float32 rounding grows with the activations
    b = x.shape[convert_kw.get("batch_dim", 0)]
    for p in ps:
        tmodel = tunify.convert(copy.deepcopy(model), p, **convert_kw)
        omega = torch.rand(b, p)
        with torch.no_grad():
            torch.testing.assert_close(tmodel(x, omega=omega[0]), reference, atol=atol, rtol=1e-4)
            torch.testing.assert_close(tmodel(x, omega=omega), reference, atol=atol, rtol=1e-4)
    spread_copies(tmodel, scale=0.3)
    corners = torch.eye(tmodel.p)
    with torch.no_grad():
        outputs = [tmodel(x, omega=c) for c in corners]
        assert (outputs[0] - outputs[-1]).abs().max() > 1e-3, "the output does not move with omega"
        check_per_sample_and_bake(model, tmodel, x, omega, convert_kw.get("batch_dim", 0), atol)
    return tmodel


def check_per_sample_and_bake(original, tmodel, x, omega, batch_dim: int, atol: float) -> None:
    """Each sample with its own ω = that sample alone; bake at a ω = the tunable model there."""
    together = tmodel(x, omega=omega)
    for i in range(x.shape[batch_dim]):
        sample = x.narrow(batch_dim, i, 1)
        alone = tmodel(sample, omega=omega[i])
        torch.testing.assert_close(together.narrow(batch_dim, i, 1), alone, atol=10 * atol, rtol=1e-4)
    baked = tunify.bake(tmodel, omega[0])
    torch.testing.assert_close(baked(x), tmodel(x, omega=omega[0]), atol=atol, rtol=1e-4)
    assert [type(m) for m in baked.modules()] == [type(m) for m in original.modules()]
    assert list(baked.state_dict()) == list(original.state_dict())
    assert sum(p.numel() for p in baked.parameters()) == sum(p.numel() for p in original.parameters())


def names(tmodel: tunify.TunableModel) -> set[str]:
    return set(tmodel.conversion_report().names())


TIMM = {  # name -> (input size, overrides); timm's own tiny test_* variants keep the test fast on a CPU
    "test_resnet": (64, {}),
    "convnext_atto": (64, {}),
    "test_efficientnet": (64, {}),
    "test_vit": (64, {"img_size": 64}),
    "test_maxvit": (64, {"img_size": 64}),  # window and grid attention with relative position bias
    "test_nfnet": (64, {}),  # ScaledStdConv2d: a Conv2d subclass that standardises its weight in forward
    "resnetv2_50x1_bit": (64, {"layers": (1, 1, 1, 1)}),  # StdConv2d
    "tf_efficientnet_b0": (64, {}),  # Conv2dSame: TensorFlow "same" padding computed in forward
    "regnetx_002": (64, {}),  # grouped convolutions
}


def create_timm(name: str, **overrides) -> nn.Module:
    if name == "resnetv2_50x1_bit":  # its factory fixes the depths; the class takes them
        from timm.layers import StdConv2d
        from timm.models.resnetv2 import ResNetV2

        return ResNetV2(num_classes=5, conv_layer=StdConv2d, stem_type="fixed", **overrides)
    return timm.create_model(name, pretrained=False, num_classes=5, **overrides)


@pytest.mark.parametrize("name", list(TIMM))
def test_timm_models(name: str) -> None:
    torch.manual_seed(0)
    size, overrides = TIMM[name]
    model = perturbed(create_timm(name, **overrides))
    tmodel = check_model(model, torch.randn(2, 3, size, size))
    expected = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    assert expected <= names(tmodel)


def test_real_pretrained_cdncnn(shared) -> None:
    model = models.cdncnn()
    weights = shared / "pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth"
    model.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.rand(2, 3, 24, 24)
    tmodel = check_model(model.eval(), x)
    assert names(tmodel) == {str(i) for i in range(0, 39, 2)}


def test_multihead_attention_net() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.AttentionNet().eval(), torch.randn(10, 3, 6), batch_dim=0)
    assert names(tmodel) == {"embed", "attn", "head"}


def test_sequence_first_network_runs_per_sample_omega_sample_by_sample() -> None:
    torch.manual_seed(0)  # 4 tokens, batch 2: a Linear on (L, B, E) would apply ω rows to token pairs
    tmodel = check_model(models.SequenceFirstNet().eval(), torch.randn(2, 4, 6), ps=(2,))
    assert tmodel._vmap_per_sample


def test_transformer_encoder_eval_fast_path_is_not_taken() -> None:
    torch.manual_seed(0)
    model = models.EncoderNet().eval()
    tmodel = check_model(model, torch.randn(3, 5, 16), ps=(2,))
    layer = tmodel.base_model.encoder.layers[0]
    assert isinstance(layer.self_attn, tunify.layers.TunableMultiheadAttention)
    assert {"encoder.layers.0.linear1", "encoder.layers.1.self_attn"} <= names(tmodel)
    baked = tunify.bake(tmodel, torch.tensor([0.2, 0.8]))
    assert baked.encoder.layers[0].activation_relu_or_gelu == 1  # the fused path is back once baked


def test_functional_calls_on_own_parameters() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.FunctionalNet().eval(), torch.randn(3, 3, 8, 8))
    assert names(tmodel) == {"<root>", "child"}


def test_shared_module_converted_once_and_stays_shared() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.SharedNet().eval(), torch.randn(2, 3, 8, 8))
    assert tmodel.base_model.block is tmodel.base_model.again
    assert len(tmodel.conversion_report()) == 2
    assert "block (= again)" in str(tmodel.conversion_report())


def test_shape_dependent_control_flow_converts_completely() -> None:
    torch.manual_seed(0)
    model = models.ControlFlowNet().eval()
    tmodel = check_model(model, torch.randn(2, 3, 7, 7))
    assert names(tmodel) == {"stem", "body.conv", "body.out"}


def test_control_flow_deep_inside_is_traced_around() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.DeepControlFlowNet().eval(), torch.randn(2, 3, 7, 7))
    inner = "stages.0.0.functional"
    assert names(tmodel) == {"stem", inner, f"{inner}.child", "tail", "tail.child"}


def test_fixed_filters_in_buffers_stay_fixed() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.BlurPoolNet().eval(), torch.randn(2, 3, 8, 8))
    assert names(tmodel) == {"conv"}
    assert isinstance(tmodel.base_model.filt, torch.Tensor)


def test_conv_zoo() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.ConvZooNet().eval(), torch.randn(2, 3, 8, 8))
    assert names(tmodel) == {"down", "grouped", "depthwise", "up", "line", "volume", "volume_up"}


def test_layer_run_once_for_the_batch_falls_back_to_one_sample_at_a_time() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.BatchOnceNet().eval(), torch.randn(3, 3, 6, 6), ps=(2,))
    assert tmodel._vmap_per_sample


def test_child_weight_passed_to_functional_call_by_its_parent() -> None:
    torch.manual_seed(0)
    tmodel = check_model(models.BiasedAttentionNet().eval(), torch.randn(3, 5, 8))
    assert names(tmodel) == {"attn", "attn.proj", "head"}
    assert tmodel.base_model.attn.tensor_names == ("qkv.weight",)
