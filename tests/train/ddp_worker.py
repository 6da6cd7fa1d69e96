"""Entry point for ``torchrun`` in test_distributed.py: a tiny data-parallel training run on CPU (gloo)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from train_toys import DictDataset, ddp_config, make_model, multi_loss, uniform_sampler

from tunify.train import Trainer, save_weights


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(make_model(), multi_loss, uniform_sampler, DictDataset(), ddp_config(), out_dir)
    trainer.fit()
    if trainer.dist.is_main:
        save_weights(trainer.model, Path(out_dir) / "model.safetensors")


if __name__ == "__main__":
    main(sys.argv[1])
