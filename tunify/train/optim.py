"""Optimiser construction with a separate learning rate for the tunable layers' ω maps (φ)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from tunify.layers import phi_parameters
from tunify.train.config import TrainConfig

PHI_NAME = "phi"


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters split into the base group and, when ``phi_lr_mult != 1``, a ``phi`` group.

    φ is found by what it is (:func:`tunify.layers.phi_parameters`), not by name, so a user's own
    submodule called ``phi`` stays in the base group.
    """
    phi_ids = {id(p) for p in phi_parameters(model)}
    base, phi = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if config.phi_lr_mult != 1.0 and id(param) in phi_ids:
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
