from __future__ import annotations

import math

import pytest
import torch

from tunify.train import TrainConfig, lr_factor
from tunify.train.schedule import build_scheduler


def test_linear_warmup_then_constant():
    config = TrainConfig(total_steps=10, schedule="constant", warmup_steps=4)
    assert [lr_factor(s, config) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_after_warmup():
    config = TrainConfig(total_steps=12, schedule="cosine", warmup_steps=2, min_lr_ratio=0.1)
    assert lr_factor(2, config) == pytest.approx(1.0)
    assert lr_factor(7, config) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(12, config) == pytest.approx(0.1)
    assert lr_factor(50, config) == pytest.approx(0.1)


def test_multistep():
    config = TrainConfig(total_steps=10, schedule="multistep", milestones=(3, 6), gamma=0.5)
    assert [lr_factor(s, config) for s in range(8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_scheduler_sets_each_group_lr_for_the_coming_update():
    config = TrainConfig(total_steps=8, schedule="cosine", warmup_steps=2, lr=0.1)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w], "lr": 0.1}, {"params": [], "lr": 1.0}], lr=0.1)
    sched = build_scheduler(opt, config)
    for step in range(8):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * lr_factor(step, config))
        assert opt.param_groups[1]["lr"] == pytest.approx(1.0 * lr_factor(step, config))
        opt.step()
        sched.step()
