"""Helpers for tunify.zoo tests (a uniquely named module, since tests/ has no packages): where the official fixtures live and how to read one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = REPO_ROOT.parent / "shared" / "fixtures" / "official"
FIXTURES = sorted(OFFICIAL.glob("*.safetensors")) if OFFICIAL.is_dir() else []
#: Fixture files keep the official state dict under this prefix, next to `input` and `output`.
FIXTURE_PREFIX = "model."


def fixture_params() -> list:
    """One pytest param per fixture file, or a single skipped param when ../shared is absent."""
    if not FIXTURES:
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"official fixtures not found at {OFFICIAL}"))
        ]
    return [pytest.param(p, id=p.stem) for p in FIXTURES]


def fixture_io(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    d = load_file(str(path))
    return d["input"], d["output"]


def fixture_by_name(name: str) -> Path:
    path = OFFICIAL / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"official fixture {path} not found")
    return path
