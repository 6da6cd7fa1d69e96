"""Committed benchmark results record paths relative to the repository, never a machine's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_results_hold_no_absolute_paths(path: Path) -> None:
    absolute = [s for s in _strings(json.loads(path.read_text())) if s.startswith(("/", "~"))]
    assert not absolute, f"{path.name} records absolute paths: {absolute}"
