"""Training of tunable networks: the :class:`Trainer` loop and its resumable, distributed plumbing.

Example:
    >>> from tunify.train import TrainConfig, Trainer
    >>> config = TrainConfig(total_steps=20_000, batch_size=16, lr=1e-4, ema_decay=0.999)
    >>> Trainer(model, loss_fn, sampler, dataset, config, "runs/dncnn", resume=True).fit()
"""

from __future__ import annotations

from tunify._atomic import atomic_write
from tunify.train.checkpoint import CheckpointDir, load_weights, save_weights
from tunify.train.config import TrainConfig
from tunify.train.data import ResumableBatchSampler, make_train_loader
from tunify.train.distributed import DistInfo, dist_info
from tunify.train.ema import ModelEMA
from tunify.train.schedule import lr_factor
from tunify.train.trainer import Trainer
from tunify.train.two_stage import train_two_stage, training_stage

__all__ = [
    "CheckpointDir",
    "DistInfo",
    "ModelEMA",
    "ResumableBatchSampler",
    "TrainConfig",
    "Trainer",
    "atomic_write",
    "dist_info",
    "load_weights",
    "lr_factor",
    "make_train_loader",
    "save_weights",
    "train_two_stage",
    "training_stage",
]
