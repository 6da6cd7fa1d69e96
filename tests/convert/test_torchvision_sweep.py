"""Opt-in (``pytest -m slow tests/convert/test_torchvision_sweep.py``, ~1 min): torchvision's own families,
freshly initialised, converted and checked like the timm sweep (shared and per-sample ω, bake): image
classifiers, segmentation networks (dict outputs), video networks (Conv3d, 3-D windows) and RAFT (two inputs,
a list of flows). Every torchvision architecture passed these checks when they were written (December 2026),
except the ones too large for a CPU test; the list keeps one of each family."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.models import get_model
from torchvision.models.optical_flow import raft_small

import tunify
from tests.convert.test_equivalence import check_model, perturbed

pytestmark = pytest.mark.slow

FAMILIES = {  # name -> (input shape of one sample, extra constructor arguments)
    "resnet18": ((3, 64, 64), {}),
    "mobilenet_v3_small": ((3, 64, 64), {}),
    "shufflenet_v2_x0_5": ((3, 64, 64), {}),
    "squeezenet1_1": ((3, 64, 64), {}),
    "googlenet": ((3, 96, 96), {"aux_logits": False, "init_weights": True}),
    "inception_v3": ((3, 96, 96), {"aux_logits": False, "init_weights": True}),
    "regnet_y_400mf": ((3, 64, 64), {}),
    "efficientnet_b0": ((3, 64, 64), {}),
    "convnext_tiny": ((3, 64, 64), {}),
    "swin_t": ((3, 64, 64), {}),
    "swin_v2_t": ((3, 64, 64), {}),
    "vit_b_32": ((3, 224, 224), {}),
    "maxvit_t": ((3, 224, 224), {}),
    "deeplabv3_mobilenet_v3_large": ((3, 64, 64), {"weights_backbone": None, "aux_loss": False}),
    "lraspp_mobilenet_v3_large": ((3, 64, 64), {"weights_backbone": None}),
    "fcn_resnet50": ((3, 64, 64), {"weights_backbone": None, "aux_loss": False}),
    "r3d_18": ((3, 4, 64, 64), {}),
    "r2plus1d_18": ((3, 4, 64, 64), {}),
    "swin3d_t": ((3, 8, 64, 64), {}),
}


class SegmentationOutput(nn.Module):
    """torchvision's segmentation networks return ``{"out": …}``: the map itself, for tensor comparisons."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


@pytest.mark.parametrize("name", FAMILIES)
def test_torchvision_architecture(name: str) -> None:
    torch.manual_seed(0)
    shape, kwargs = FAMILIES[name]
    model = get_model(name, weights=None, num_classes=5, **kwargs)
    if "weights_backbone" in kwargs:
        model = SegmentationOutput(model)
    check_model(perturbed(model), torch.rand(2, *shape), ps=(2,), atol=1e-4)


def test_raft_two_inputs_and_a_list_of_flows() -> None:
    torch.manual_seed(0)
    model = perturbed(raft_small(weights=None))
    first, second = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    tmodel = tunify.convert(copy.deepcopy(model), 2)
    omega = torch.tensor([[0.8, 0.2], [0.1, 0.9]])
    with torch.no_grad():
        expected = model(first, second, num_flow_updates=2)[-1]
        shared = tmodel(first, second, num_flow_updates=2, omega=omega[0])[-1]
        torch.testing.assert_close(shared, expected, atol=1e-4, rtol=1e-4)
        for param in tmodel.parameters():
            param.add_(0.01 * torch.randn_like(param))
        together = tmodel(first, second, num_flow_updates=2, omega=omega)[-1]
        alone = tmodel(first[1:], second[1:], num_flow_updates=2, omega=omega[1])[-1]
        torch.testing.assert_close(together[1:], alone, atol=1e-4, rtol=1e-4)
        baked = tunify.bake(tmodel, omega[1])
        torch.testing.assert_close(baked(first[1:], second[1:], num_flow_updates=2)[-1], alone)
