from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "tunify"
ALLOWED = {"data": {"tunify.data"}, "evaluate": {"tunify.data", "tunify.evaluate", "tunify.objectives"}}


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_lower_levels(room: str) -> None:
    """data is L1 (no other tunify rooms); evaluate is L3 and must not reach into layers/convert."""
    for path in (PKG / room).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("tunify"):
                    root = ".".join(name.split(".")[:2])
                    assert root in ALLOWED[room], f"{path.relative_to(PKG)} imports {name}"
