"""The top-level zoo/ folder: the registry parses and follows its schema, the model card template fills."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ZOO = Path(__file__).resolve().parents[2] / "zoo"
REQUIRED = {
    "id": str,
    "hub_repo_id": str,
    "license": str,
    "base": dict,
    "conversion": dict,
    "objectives": list,
    "training": dict,
    "metrics": dict,
}


def _check_entry(entry: dict) -> None:
    for key, kind in REQUIRED.items():
        assert isinstance(entry.get(key), kind), (
            f"{entry.get('id')}: field {key!r} missing or not a {kind.__name__}"
        )
    assert {"architecture", "kwargs"} <= set(entry["base"])
    p = entry["conversion"]["p"]
    assert [o["omega"] for o in entry["objectives"]] == list(range(p))
    assert all(o.get("loss") and o.get("effect") for o in entry["objectives"])
    assert {"data", "budget"} <= set(entry["training"])
    assert {"protocol", "results"} <= set(entry["metrics"])


def test_registry_parses_and_follows_schema() -> None:
    registry = yaml.safe_load((ZOO / "registry.yaml").read_text())
    assert registry["schema_version"] == 1
    entries = registry["entries"]
    assert isinstance(entries, list)
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for entry in entries:
        _check_entry(entry)


def test_commented_example_entry_follows_schema() -> None:
    text = (ZOO / "registry.yaml").read_text()
    example = "\n".join(
        line.removeprefix("# ").removeprefix("#")
        for line in text.split("# entries:", 1)[1].splitlines()
        if line.startswith("#")
    )
    entries = yaml.safe_load("entries:\n" + example)["entries"]
    assert len(entries) == 1
    _check_entry(entries[0])


@pytest.mark.parametrize("name", ["README.md", "registry.yaml", "default_denoiser.md"])
def test_zoo_files_exist(name: str) -> None:
    assert (ZOO / name).is_file()
