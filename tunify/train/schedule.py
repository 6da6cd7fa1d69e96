"""Learning-rate schedules as a pure function of the step, so a resumed run recomputes them exactly."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from tunify.train.config import TrainConfig


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate for the update with 0-based index ``step``.

    Linear warm-up over ``warmup_steps`` updates reaches 1 at the last warm-up update, then the schedule
    named by ``config.schedule`` takes over (cosine counts its period from the end of the warm-up;
    multistep milestones are absolute steps).
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "multistep":
        return config.gamma ** sum(step >= m for m in config.milestones)
    period = config.total_steps - config.warmup_steps
    progress = min(step - config.warmup_steps, period) / period
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LambdaLR:
    """A LambdaLR over every parameter group; its state is just the step, so it checkpoints trivially."""
    return LambdaLR(optimizer, lambda step: lr_factor(step, config))
