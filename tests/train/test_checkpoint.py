from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from tunify.train import CheckpointDir, atomic_write, load_weights, save_weights
from tunify.train import checkpoint as checkpoint_module
from tunify.train.rng import capture_rng_state, restore_rng_state


class _Crash(RuntimeError):
    pass


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3,), value)}


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_then_crash(tmp):
        tmp.write_text("new but incomp")
        raise _Crash

    with pytest.raises(_Crash):
        atomic_write(target, half_then_crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_checkpoint_save_failing_midway_leaves_previous_intact(tmp_path, monkeypatch):
    ckpts = CheckpointDir(tmp_path, keep=2)
    ckpts.save(1, {"model": _state(1.0)}, {"step": 1})

    def torch_save_crash(obj, path):
        path.write_bytes(b"\x80partial")
        raise _Crash

    monkeypatch.setattr(checkpoint_module.torch, "save", torch_save_crash)
    with pytest.raises(_Crash):
        ckpts.save(2, {"model": _state(2.0)}, {"step": 2})
    assert ckpts.steps() == [1]
    tensors, state = ckpts.load(ckpts.latest())
    assert state == {"step": 1} and torch.equal(tensors["model"]["w"], _state(1.0)["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000001"]


def test_partial_temporaries_ignored_then_cleaned(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    ckpts.save(3, {"model": _state(3.0)}, {"step": 3})
    (tmp_path / ".step_00000006.abc.tmp").mkdir()  # a save killed mid-way
    (tmp_path / ".step_00000006.abc.tmp" / "model.safetensors").write_bytes(b"torn")
    (tmp_path / "step_00000009").write_text("a stray file, not a folder")
    assert ckpts.latest() == tmp_path / "step_00000003"
    ckpts.save(6, {"model": _state(6.0)}, {"step": 6})
    assert not list(tmp_path.glob(".*"))
    assert ckpts.steps() == [3, 6]


def test_keeps_only_the_newest(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    for step in (1, 2, 3, 3):
        ckpts.save(step, {"model": _state(float(step))}, {"step": step})
    assert ckpts.steps() == [2, 3]


def test_save_weights_round_trip_with_tied_weights(tmp_path):
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[1].weight = net[0].weight
    save_weights(net, tmp_path / "w.safetensors")
    loaded = load_weights(tmp_path / "w.safetensors")
    assert set(loaded) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(loaded[key], value)


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    restore_rng_state(checkpoint_module.load_torch(tmp_path / "rng.pt"))
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1]
    assert np.random.rand() == expected[2]
