"""Each room of the package imports only from rooms below it (docs/CONTRACT.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tunify"

# private leaf modules (no tunify imports of their own) that any room may use
LEAVES = {"_version", "_atomic"}

# room -> the tunify rooms it may import
ALLOWED = {
    "layers": set(),
    "objectives": set(),
    "data": set(),
    "zoo": set(),
    "convert": {"layers"},
    "evaluate": {"data"},
    "train": {"objectives", "data", "convert", "layers"},
    "strategies": {"convert", "layers"},
    "hub": {"convert", "layers", "zoo", "evaluate", "data"},
    "recipes": {"convert", "layers", "zoo", "evaluate", "data", "objectives", "train", "hub", "strategies"},
    "app": {"convert", "layers", "zoo", "evaluate", "data", "hub", "inference", "cli"},
}


def tunify_imports(path: Path) -> set[str]:
    """The tunify rooms a module imports at module level (absolute or relative).

    Imports inside functions are how a lower room delegates to a higher one on demand
    (``TunableModel.save_pretrained`` calls ``tunify.hub``); they do not create an import-time dependency.
    """
    rooms = set()
    depth = len(path.relative_to(PACKAGE).parts) - 1
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = path.relative_to(PACKAGE).parts[: depth - node.level + 1]
                target = [*parts, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("tunify."):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                rooms.add(target[0])
            else:  # "from .. import zoo"
                rooms.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            rooms.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tunify."))
    return rooms


@pytest.mark.parametrize("room", sorted(r for r in ALLOWED if (PACKAGE / r).is_dir()))
def test_room_imports_only_lower_rooms(room: str) -> None:
    for path in (PACKAGE / room).rglob("*.py"):
        imported = tunify_imports(path) - {room, *LEAVES}
        assert imported <= ALLOWED[room], (
            f"{path.relative_to(PACKAGE)} imports {sorted(imported - ALLOWED[room])}"
        )
