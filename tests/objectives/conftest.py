from __future__ import annotations

import pytest
import torch


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """A tiny seeded denoising batch: clean target and noisy input, (2, 3, 16, 16)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    noisy = clean + 0.1 * torch.randn(2, 3, 16, 16, generator=g)
    return {"clean": clean, "input": noisy}
