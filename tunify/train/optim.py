"""Optimiser construction with a separate learning rate for the tunable layers' ω maps (``phi``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from tunify.train.config import TrainConfig

PHI_NAME = "phi"


def is_phi_parameter(name: str) -> bool:
    """True for parameters that live under a submodule named ``phi`` (e.g. ``body.3.phi.weight``)."""
    return PHI_NAME in name.split(".")[:-1]


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters split into the base group and, when ``phi_lr_mult != 1``, a ``phi`` group."""
    base, phi = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if config.phi_lr_mult != 1.0 and is_phi_parameter(name):
            phi.append(param)
        else:
            base.append(param)
    groups = [{"params": base, "lr": config.lr, "name": "base"}]
    if phi:
        groups.append({"params": phi, "lr": config.lr * config.phi_lr_mult, "name": PHI_NAME})
    return groups


def build_optimizer(
    params: nn.Module | Iterable[torch.nn.Parameter], config: TrainConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    """Adam or AdamW from ``config``; a module gets the phi-aware groups, an iterable one group at ``lr``."""
    if isinstance(params, nn.Module):
        groups: list[dict] | list[torch.nn.Parameter] = param_groups(params, config)
    else:
        groups = [p for p in params if p.requires_grad]
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(
        groups, lr=config.lr if lr is None else lr, betas=config.betas, weight_decay=config.weight_decay
    )
