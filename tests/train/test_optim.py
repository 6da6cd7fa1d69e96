from __future__ import annotations

import pytest
from torch import nn
from train_toys import ToyTunable

import tunify
from tunify.train import TrainConfig
from tunify.train.optim import build_optimizer


def test_phi_parameters_get_their_own_lr():
    config = TrainConfig(lr=1e-3, phi_lr_mult=10.0, optimizer="adamw", weight_decay=0.01)
    tmodel = tunify.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1)), p=2)
    base, phi = build_optimizer(tmodel, config).param_groups
    assert base["lr"] == pytest.approx(1e-3) and phi["lr"] == pytest.approx(1e-2)
    assert len(phi["params"]) == 4 and len(base["params"]) == 4  # φ weight+bias ×2; weight+bias stacks ×2
    assert phi["weight_decay"] == 0.01


def test_a_users_own_phi_module_is_not_tunifys():
    """φ is recognised by what it is, not by the name ``phi`` (a toy network's own ``phi`` layer)."""
    config = TrainConfig(lr=1e-3, phi_lr_mult=10.0)
    groups = build_optimizer(ToyTunable(), config).param_groups
    assert len(groups) == 1 and len(groups[0]["params"]) == 6


def test_single_group_without_multiplier():
    opt = build_optimizer(ToyTunable(), TrainConfig())
    assert len(opt.param_groups) == 1
