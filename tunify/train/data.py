"""Deterministic, resumable data order: the batch at step ``s`` is a pure function of (seed, s).

A resumed run must see exactly the batches the uninterrupted run would have seen, and a run on N ranks the
same global batches as a single process. The sample stream is the concatenation of per-epoch permutations
(each seeded by (seed, epoch)); global batch ``s`` is stream positions ``[s*B, (s+1)*B)`` and rank ``r`` of
``W`` takes the ``r``-th contiguous slice of ``B/W`` of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tunify.train.config import TrainConfig
from tunify.train.distributed import dist_info


class ResumableBatchSampler(Sampler[list[int]]):
    """Infinite batch sampler over ``range(num_samples)`` that can start at any step.

    Args:
        num_samples: dataset length.
        batch_size: global batch size (all ranks together).
        seed: seed of the per-epoch permutations.
        rank: this process's rank.
        world_size: number of ranks; must divide ``batch_size``.
    """

    def __init__(
        self, num_samples: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {num_samples}")
        if batch_size % world_size:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by the world size ({world_size})")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = 0
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def set_start_step(self, step: int) -> None:
        """The next ``iter()`` starts with the batch of this step."""
        self.start_step = step

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
            self._perm = torch.randperm(self.num_samples, generator=gen)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def __iter__(self) -> Iterator[list[int]]:
        local = self.batch_size // self.world_size
        step = self.start_step
        while True:
            first = step * self.batch_size + self.rank * local
            yield [self._index(first + i) for i in range(local)]
            step += 1


def make_train_loader(
    dataset: Dataset,
    config: TrainConfig,
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    pin_memory: bool = False,
    num_workers: int | None = None,
) -> DataLoader:
    """A DataLoader whose order the trainer can resume: use it to pass a custom ``collate_fn``
    (``num_workers`` defaults to ``config.num_workers``).

    Exact resumption also needs per-item randomness (random crops, noise) to be a function of the index,
    or ``num_workers=0`` (then it comes from each rank's torch RNG, which checkpoints restore).
    """
    info = dist_info()
    sampler = ResumableBatchSampler(
        len(dataset), config.batch_size, seed=config.seed, rank=info.rank, world_size=info.world_size
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers if num_workers is None else num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(config.seed + info.rank),  # workers' seeds differ per rank
    )
