"""Fixtures shared by every test folder: the location of ../shared and helpers for tunable models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n auto` runs one worker per core: threads of a worker's own (and of the command-line processes
    # it starts) would only compete for the cores the other workers use
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` intra-op threads (some layer paths depend on it), then restore them."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def shared() -> Path:
    """The reference data folder beside the repository (skips the test when it is absent)."""
    if not SHARED.is_dir():
        pytest.skip(f"reference data not found at {SHARED} (the shared/ folder beside the repository)")
    return SHARED


def spread_copies(model: nn.Module, seed: int = 0, scale: float = 0.05) -> nn.Module:
    """Make the p copies of every tunable tensor differ, so that the output depends on ω."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_copy = name.rsplit(".", 1)[-1].isdigit() or ".original" in name
            if is_copy and "phi" not in name:
                param.add_(scale * param.abs().mean().clamp_min(1e-3) * torch.randn(param.shape, generator=g))
    return model


def tiny_dncnn(seed: int = 0, scale: float = 0.05) -> nn.Module:
    """A converted 3-layer, 8-channel DnCNN from the zoo with perturbed copies: the command-line tests' model."""
    import tunify

    torch.manual_seed(seed)
    base = tunify.zoo.build({"architecture": "DnCNN", "kwargs": {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3}})
    tmodel = tunify.convert(base.eval(), p=2).eval()
    with torch.no_grad():
        for param in tmodel.parameters():
            param.add_(scale * torch.randn_like(param))
    return tmodel
