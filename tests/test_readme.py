"""The README's set-up commands are the ones CI runs, its Python fine-tuning example runs, and its pictures
are in the repository (and the one drawn for it still draws)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    setup = ROOT.joinpath("README.md").read_text().split("## Set up", 1)[1]
    block = re.search(r"```bash\n(.*?)```", setup, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_commands_in_order() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    ci = [line for line in ROOT.joinpath(".ci/run").read_text().splitlines() if line in commands]
    assert ci == commands


def readme_python_example() -> str:
    """The fine-tuning example of "The first hour", as a reader would paste it."""
    section = ROOT.joinpath("README.md").read_text().split("**Fine-tune your own network in Python.**", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_fine_tuning_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_python_example()
    assert "for step in range(200):" in code
    monkeypatch.chdir(tmp_path)  # it writes my-denoiser/ into the working folder
    torch.manual_seed(0)
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("range(200)", "range(2)"), "README.md", "exec"), namespace)

    tmodel, plain, again = namespace["tmodel"], namespace["plain"], namespace["again"]
    assert namespace["step"] == 1 and torch.isfinite(namespace["loss"])
    assert type(plain) is torch.nn.Sequential and not any(
        p.requires_grad is False for p in plain.parameters()
    )
    x, omega = torch.rand(2, 3, 16, 16), torch.tensor([0.7, 0.3])
    with torch.no_grad():
        torch.testing.assert_close(plain(x), tmodel(x, omega=omega))
        torch.testing.assert_close(again(x, omega=omega), tmodel(x, omega=omega), rtol=0, atol=0)
        trained_end = tmodel(x, omega=torch.tensor([0.0, 1.0]))
        assert not torch.equal(trained_end, tmodel(x, omega=torch.tensor([1.0, 0.0])))  # the copies moved
    config = json.loads((tmp_path / "my-denoiser" / "config.json").read_text())
    assert [o["description"] for o in config["info"]["objectives"]] == [
        "removes the noise",
        "keeps the noise",
    ]
    assert "model=Sequential()" in (tmp_path / "my-denoiser" / "README.md").read_text()


def test_every_picture_the_readme_shows_is_in_the_repository() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", ROOT.joinpath("README.md").read_text())
    assert len(pictures) >= 4, pictures
    assert [p for p in pictures if not ROOT.joinpath(p).is_file()] == []


def test_the_omega_map_figure_draws(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    path = figures.omega_map_figure(tmp_path / "omega_map.png", size=48)
    width, height = Image.open(path).size
    assert width >= 5 * 48 and height > 48
