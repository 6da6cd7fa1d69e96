"""Opt-in (``pytest -m slow tests/convert/test_timm_sweep.py``, ~4 min): 99 timm architectures, freshly
initialised, converted, and checked like the quick suite's nine (shared and per-sample ω, bake), plus a
constant ω map and a save/load round trip. It found the nested functional sites, timm's BlurPool2d buffer
and CoaT's shared modules. The last 24 come from a wider sweep of 97 more (timm's tiny test_* networks,
weight-standardised NF-Nets, split and selective-kernel attention, relative-position ViTs …), where all
but efficientnetv2_rw_t passed: its per-sample logits (up to 5,800 once perturbed) moved by 0.8 % in float32
and agreed to 5e-7 in float64, rounding rather than conversion. Add a family here when users report one."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

import tunify
from tests.convert.test_equivalence import check_model, perturbed

pytestmark = pytest.mark.slow

FAMILIES = [
    "resnet18",
    "mobilenetv3_small_050",
    "mobilenetv2_050",
    "efficientnet_b0",
    "convnext_atto",
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "swinv2_cr_tiny_ns_224",
    "levit_128s",
    "coat_lite_tiny",
    "crossvit_tiny_240",
    "poolformer_s12",
    "mobilevit_xxs",
    "edgenext_xx_small",
    "efficientformer_l1",
    "efficientformerv2_s0",
    "ghostnet_050",
    "hrnet_w18_small",
    "dla34",
    "res2net50_14w_8s",
    "seresnext26d_32x4d",
    "cspresnet50",
    "regnety_002",
    "rexnet_100",
    "tinynet_e",
    "fastvit_t8",
    "repvit_m0_9",
    "hgnetv2_b0",
    "inception_v3",
    "xception41",
    "densenet121",
    "dpn68",
    "mixnet_s",
    "pit_ti_224",
    "tnt_s_patch16_224",
    "twins_svt_small",
    "visformer_tiny",
    "volo_d1_224",
    "xcit_nano_12_p16_224",
    "convit_tiny",
    "cait_xxs24_224",
    "eva02_tiny_patch14_224",
    "mvitv2_tiny",
    "nextvit_small",
    "focalnet_tiny_srf",
    "gcvit_xxtiny",
    "davit_tiny",
    "maxvit_tiny_rw_224",
    "coatnet_0_rw_224",
    "efficientvit_b0",
    "efficientvit_m0",
    "mobilenetv4_conv_small",
    "lcnet_050",
    "ese_vovnet19b_dw",
    "selecsls42b",
    "tresnet_m",
    "sequencer2d_s",
    "mixer_s32_224",
    "resmlp_12_224",
    "gmlp_ti16_224",
    "botnet26t_256",
    "halonet26t",
    "lambda_resnet26t",
    "repvgg_a0",
    "mobileone_s0",
    "inception_next_tiny",
    "rdnet_tiny",
    "starnet_s1",
    "vitamin_small_224",
    "hiera_tiny_224",
    "sam2_hiera_tiny",
    "fasternet_t0",
    "shvit_s1",
    "mambaout_femto",
    "test_vit",
    "test_efficientnet",
    "test_byobnet",
    "test_convnext",
    "test_nfnet",
    "test_resnet",
    "nf_resnet26",
    "eca_nfnet_l0",
    "resnest14d",
    "skresnet18",
    "gernet_s",
    "cs3darknet_s",
    "nest_tiny",
    "pvt_v2_b0",
    "levit_conv_128s",
    "tiny_vit_5m_224",
    "vit_relpos_small_patch16_224",
    "regnetz_b16",
    "mobilenetv4_hybrid_medium",
    "caformer_s18",
    "maxxvit_rmlp_nano_rw_256",
    "swinv2_tiny_window8_256",
    "ghostnetv3_050",
    "csatv2",
]


def build(name: str) -> tuple[nn.Module, int]:
    """The network at 64×64 where it accepts that size (``img_size=64`` if it takes one), else its own."""
    for extra, size in [({"img_size": 64}, 64), ({}, 64), ({}, None)]:
        try:
            model = timm.create_model(name, pretrained=False, num_classes=5, **extra).eval()
            size = size or model.pretrained_cfg["input_size"][-1]
            with torch.no_grad():
                model(torch.randn(1, 3, size, size))
        except (TypeError, RuntimeError, AssertionError, ValueError):
            continue
        return model, size
    pytest.fail(f"{name}: timm cannot build it at any size tried")


@pytest.mark.parametrize("name", FAMILIES)
def test_timm_architecture(name: str, tmp_path) -> None:
    torch.manual_seed(0)  # timm initialises from the global generator: the same network in any test order
    model, size = build(name)
    model = perturbed(model)
    x = torch.randn(2, 3, size, size)
    tmodel = check_model(copy.deepcopy(model), x, ps=(2,), atol=1e-4)
    rows = torch.tensor([[0.8, 0.2], [0.1, 0.9]])
    with torch.no_grad():
        expected = tmodel(x, omega=rows)
        constant_map = rows[:, :, None, None].expand(2, 2, size, size)
        torch.testing.assert_close(tmodel(x, omega=constant_map), expected, atol=1e-4, rtol=1e-4)
        tmodel.save_pretrained(tmp_path / "saved")
        again = tunify.from_pretrained(tmp_path / "saved", model=build(name)[0])
        torch.testing.assert_close(again(x, omega=rows), expected, atol=1e-5, rtol=1e-5)
