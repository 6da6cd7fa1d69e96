"""Entry point for ``torchrun`` in test_distributed.py: tiny data-parallel runs on CPU (gloo).

Trains ``out_dir/straight`` uninterrupted, then ``out_dir/resumed`` killed inside step 4 on every rank and
resumed, each with the same config; rank 0 also saves the live weights as ``model.safetensors``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from train_toys import DictDataset, ddp_config, make_model, multi_loss, uniform_sampler

from tunify.train import Trainer, save_weights


class Killed(RuntimeError):
    pass


def kill_at_call(n: int):
    calls = []

    def loss_fn(output, batch, omega):
        calls.append(None)
        if len(calls) == n:
            raise Killed
        return multi_loss(output, batch, omega)

    return loss_fn


def train(out_dir: Path, loss_fn, resume: bool = False) -> None:
    trainer = Trainer(
        make_model(), loss_fn, uniform_sampler, DictDataset(), ddp_config(), out_dir, resume=resume
    )
    trainer.fit()
    if trainer.dist.is_main:
        save_weights(trainer.model, out_dir / "model.safetensors")


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    train(out_dir / "straight", multi_loss)
    with contextlib.suppress(Killed):
        train(out_dir / "resumed", kill_at_call(4))
    train(out_dir / "resumed", multi_loss, resume=True)
    if dist.is_initialized():  # the killed trainer's group, reused by the resumed one
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
