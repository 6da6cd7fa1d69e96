"""The README's two set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

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
