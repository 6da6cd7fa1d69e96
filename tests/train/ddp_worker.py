"""Entry point for ``torchrun`` in test_distributed.py: tiny data-parallel runs on CPU (gloo).

Trains ``out_dir/straight`` uninterrupted, then ``out_dir/resumed`` killed inside step 4 on every rank and
resumed, each with the same config, in one process group; rank 0 also saves the live weights as
``model.safetensors``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import sys
from pathlib import Path

import torch
from train_toys import DictDataset, ddp_config, make_model, multi_loss, uniform_sampler

from tunify.train import Trainer, save_weights

STALL_TIMEOUT_S = 60


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
    faulthandler.dump_traceback_later(STALL_TIMEOUT_S, exit=True)  # a stuck rank prints where, then exits
    train(out_dir / "straight", multi_loss)
    print("straight done", file=sys.stderr, flush=True)
    with contextlib.suppress(Killed):
        train(out_dir / "resumed", kill_at_call(4))
    print("killed", file=sys.stderr, flush=True)
    train(out_dir / "resumed", multi_loss, resume=True)
    print("resumed done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
