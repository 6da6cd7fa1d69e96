"""The denoise recipe's network building: bare conv stacks, grey-to-colour, residual switch, He init."""

from __future__ import annotations

import torch
from torch import nn

import tunify.zoo as zoo
from tunify.recipes import apply_overrides, apply_preset, load_config
from tunify.recipes._config import config_path
from tunify.recipes.denoise import build_model


def config(**overrides):
    return apply_overrides(apply_preset(load_config(config_path("denoise")), None), overrides)


def test_bare_conv_stack_reads_into_residual_dncnn(shared):
    path = shared / "pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth"
    state = torch.load(path, weights_only=True)
    body = nn.Sequential(
        *[
            m
            for i in range(20)
            for m in (nn.Conv2d(3 if i == 0 else 64, 3 if i == 19 else 64, 3, padding=1), nn.ReLU())
        ][:-1]
    )
    body.load_state_dict(state)
    net = build_model(config(**{"model.init": str(path)})).eval()
    assert zoo.describe(net)["kwargs"]["nb"] == 20
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(net(x), x - body(x))
        net_direct = build_model(config(**{"model.init": str(path), "model.residual": False})).eval()
        torch.testing.assert_close(net_direct(x), body(x))


def test_grey_network_becomes_a_colour_one_on_the_channel_mean(shared):
    path = shared / "pretrained/DnCNN_gray/dncnn_25_KAIR.pth"
    grey = zoo.load(path)
    colour = build_model(config(**{"model.init": str(path), "model.colour_from_grey": True})).eval()
    x = torch.rand(1, 3, 20, 20)
    mean = x.mean(1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(colour(x), x - (mean - grey(mean)), atol=1e-5, rtol=1e-5)


def test_he_init_for_scratch_networks():
    net = build_model(config(**{"model.init": "scratch", "model.arch.kwargs.nb": 5}))
    conv = net.model[2]
    assert conv.bias.abs().max() == 0
    assert abs(conv.weight.std().item() - (2 / (64 * 9)) ** 0.5) < 0.01
