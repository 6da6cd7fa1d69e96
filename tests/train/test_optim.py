from __future__ import annotations

import pytest
from train_toys import ToyTunable

from tunify.train import TrainConfig
from tunify.train.optim import build_optimizer, is_phi_parameter


def test_phi_parameters_get_their_own_lr():
    config = TrainConfig(lr=1e-3, phi_lr_mult=10.0, optimizer="adamw", weight_decay=0.01)
    opt = build_optimizer(ToyTunable(), config)
    base, phi = opt.param_groups
    assert base["lr"] == pytest.approx(1e-3) and phi["lr"] == pytest.approx(1e-2)
    assert len(phi["params"]) == 2 and len(base["params"]) == 4
    assert phi["weight_decay"] == 0.01


def test_single_group_without_multiplier():
    opt = build_optimizer(ToyTunable(), TrainConfig())
    assert len(opt.param_groups) == 1


def test_phi_name_matching():
    assert is_phi_parameter("body.3.phi.weight")
    assert is_phi_parameter("phi.bias")
    assert not is_phi_parameter("body.phi_scale")
    assert not is_phi_parameter("body.phi")
