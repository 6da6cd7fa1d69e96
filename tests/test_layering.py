"""Each room of the package imports only what docs/CONTRACT.md allows; the rooms and levels are read from it.

An import counts when it runs at import time: at module level, in a class body, or inside ``try``/``if``/
``with`` there. Imports inside functions are how a lower room delegates to a higher one on demand
(``TunableModel.save_pretrained`` calls ``tunify.hub``) and are not counted. ``import tunify`` counts as the
rooms the package's ``__init__`` imports.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tunify"
CONTRACT = ROOT / "docs" / "CONTRACT.md"
ROOM = re.compile(r"`tunify/([A-Za-z_]\w*)(?:\.py)?/?`")


@dataclass
class Contract:
    level: dict[str, int] = field(default_factory=dict)  # room -> level
    builds_on: dict[str, set[str]] = field(default_factory=dict)  # room -> rooms named after its "->"
    leaves: set[str] = field(default_factory=set)

    def allowed(self, room: str) -> set[str]:
        lower = {r for r, level in self.level.items() if level < self.level[room]}
        return lower | self.builds_on.get(room, set()) | self.leaves | {room}


def read_contract(text: str) -> Contract:
    """The room levels of the "Package rooms" list: ``- L1 `tunify/a`, `tunify/b` (-> c); L2 ...`` lines."""
    contract = Contract()
    items: list[str] = []  # list items, with their indented continuation lines joined
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line)
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
    for line in items:
        if line.startswith("- private leaves"):
            contract.leaves |= set(ROOM.findall(line))
            continue
        if not re.match(r"- L\d+ ", line):
            continue
        for segment in re.split(r";\s*(?=L\d+ )", line[2:]):
            level = int(re.match(r"L(\d+) ", segment).group(1))
            pending: list[str] = []
            for match in re.finditer(rf"{ROOM.pattern}|\(->([^)]*)\)", segment):
                if match.group(1):
                    contract.level[match.group(1)] = level
                    pending.append(match.group(1))
                else:
                    named = {name.strip() for name in match.group(2).split(",") if name.strip()}
                    for room in pending:
                        contract.builds_on[room] = named
                    pending = []
    return contract


CONTRACT_ROOMS = read_contract(CONTRACT.read_text(encoding="utf-8"))


def import_time_imports(source: str, parts: tuple[str, ...]) -> set[str]:
    """The tunify rooms (``<root>`` for the package itself) a module imports when it is imported.

    ``parts``: the module's path inside the package (``("hub", "io.py")``), which relative imports start from.
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolved against the module's package
                    target = [*parts[: len(parts) - child.level], *(child.module or "").split(".")]
                    target = [t for t in target if t]
                elif child.module == "tunify" or (child.module or "").startswith("tunify."):
                    target = child.module.split(".")[1:]
                else:
                    target = None
                if target is not None:  # "from tunify import convert" imports the room convert
                    found.update([target[0]] if target else [a.name for a in child.names])
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "tunify":
                        found.add("<root>")
                    elif alias.name.startswith("tunify."):
                        found.add(alias.name.split(".")[1])
            visit(child)

    visit(ast.parse(source))
    return {name.removesuffix(".py") for name in found}


def _imports_of(path: Path) -> set[str]:
    return import_time_imports(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).parts)


def rooms_imported(path: Path) -> set[str]:
    """Like :func:`import_time_imports`, with ``import tunify`` replaced by what ``tunify/__init__`` imports."""
    rooms = _imports_of(path)
    if "<root>" in rooms:
        rooms = (rooms - {"<root>"}) | _imports_of(PACKAGE / "__init__.py")
    return rooms


def test_the_contract_lists_every_room() -> None:
    assert {"layers", "convert", "cli"} <= set(CONTRACT_ROOMS.level) and "_atomic" in CONTRACT_ROOMS.leaves
    present = {
        p.name.removesuffix(".py")
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.name != "__init__.py")
    }
    unlisted = present - set(CONTRACT_ROOMS.level) - CONTRACT_ROOMS.leaves
    assert not unlisted, f"tunify/{sorted(unlisted)} not in docs/CONTRACT.md's room list: add them there"


@pytest.mark.parametrize("room", sorted(CONTRACT_ROOMS.level))
def test_room_imports_only_what_the_contract_allows(room: str) -> None:
    paths = sorted((PACKAGE / room).rglob("*.py")) if (PACKAGE / room).is_dir() else [PACKAGE / f"{room}.py"]
    allowed = CONTRACT_ROOMS.allowed(room)
    for path in [p for p in paths if p.is_file()]:
        extra = rooms_imported(path) - allowed
        assert not extra, (
            f"{path.relative_to(ROOT)} imports {sorted(extra)}; docs/CONTRACT.md allows {sorted(allowed)}"
        )


def test_leaves_import_no_room() -> None:
    for leaf in CONTRACT_ROOMS.leaves:
        assert _imports_of(PACKAGE / f"{leaf}.py") <= CONTRACT_ROOMS.leaves


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tunify import convert", {"convert"}),
        ("from tunify.convert import bake", {"convert"}),
        ("import tunify.hub as h", {"hub"}),
        ("from ..evaluate import sweep", {"evaluate"}),
        ("from .. import zoo, data", {"zoo", "data"}),
        ("try:\n    import tunify.train\nexcept ImportError:\n    pass", {"train"}),
        ("if True:\n    from tunify import recipes", {"recipes"}),
        ("class A:\n    from tunify import cli", {"cli"}),
        ("def f():\n    from tunify import hub", set()),  # on demand, not at import time
        ("import torch\nfrom .sibling import x", {"layers"}),  # the module's own room
    ],
)
def test_the_checker_sees_every_import_time_import(source: str, expected: set[str]) -> None:
    assert import_time_imports(source, ("layers", "omega.py")) == expected


def test_the_contract_parser() -> None:
    text = (
        "- L1 `tunify/a`, `tunify/b.py` (torch only; do not import each other)\n"
        "- L2 `tunify/c` (-> a), `tunify/d` (-> c, a)\n"
        "- L3 `tunify/e` (-> c); L4 `tunify/f`\n"
        "- private leaves any room may use: `tunify/_x.py`,\n  `tunify/_y.py`\n"
    )
    contract = read_contract(text)
    assert contract.level == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 3, "f": 4} and contract.leaves == {
        "_x",
        "_y",
    }
    leaves = {"_x", "_y"}
    assert contract.allowed("d") == {"a", "b", "c", "d", *leaves}  # d builds on c, at its own level
    assert contract.allowed("c") == {"a", "b", "c", *leaves}  # but c may not import d
    assert contract.allowed("a") == {"a", *leaves}
