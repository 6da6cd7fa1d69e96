from __future__ import annotations

import itertools

import pytest

from tunify.train import ResumableBatchSampler


def _take(sampler: ResumableBatchSampler, n: int) -> list[list[int]]:
    return list(itertools.islice(iter(sampler), n))


def test_same_seed_same_order_and_each_epoch_is_a_permutation():
    a = _take(ResumableBatchSampler(10, 5, seed=3), 6)
    assert a == _take(ResumableBatchSampler(10, 5, seed=3), 6)
    assert a != _take(ResumableBatchSampler(10, 5, seed=4), 6)
    flat = list(itertools.chain.from_iterable(a))
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert flat[:10] != flat[10:20]


def test_start_step_skips_exactly():
    straight = _take(ResumableBatchSampler(7, 3, seed=1), 9)
    sampler = ResumableBatchSampler(7, 3, seed=1)
    sampler.set_start_step(5)
    assert _take(sampler, 4) == straight[5:]


def test_ranks_split_the_global_batch():
    single = _take(ResumableBatchSampler(9, 4, seed=2), 5)
    ranks = [_take(ResumableBatchSampler(9, 4, seed=2, rank=r, world_size=2), 5) for r in range(2)]
    assert [r0 + r1 for r0, r1 in zip(*ranks, strict=True)] == single


def test_batch_must_divide_by_world_size():
    with pytest.raises(ValueError, match="world size"):
        ResumableBatchSampler(9, 3, world_size=2)
