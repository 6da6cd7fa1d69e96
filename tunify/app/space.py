"""``tunify app --export-space DIR --model REPO``: a ready Hugging Face Space running the app for a model.

A Space is a git repository with ``app.py``, ``requirements.txt`` and a ``README.md`` whose YAML header
tells the Hub to run it with gradio. The files only name the model: the Space downloads it when it starts.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .._atomic import atomic_write
from .._version import __version__
from ..hub import read_config

GRADIO_FALLBACK = "6.0.0"  # the Space's gradio when none is installed here to copy the version from

APP = '''"""Hugging Face Space for {repo}, written by `tunify app --export-space`."""

from tunify.app.serve import create

demo = create({repo!r})

if __name__ == "__main__":
    demo.launch()
'''

README = """---
{yaml}
---

# {title}

{description}

An interactive page for the tunable model [{repo}](https://huggingface.co/{repo}): move the ω sliders to
choose what the network does, paint regions to give them their own ω, add a synthetic degradation to try it
without a degraded photo, and download the full-resolution result (with ω in the PNG's metadata).

Run it locally with `pip install 'tunify[app]' && tunify app --model {repo}`.
"""


def _gradio_version() -> str:
    try:
        return version("gradio")  # the installed one, without importing it (seconds)
    except PackageNotFoundError:
        return GRADIO_FALLBACK


def export_space(directory: str | Path, repo_id: str) -> Path:
    """Write the Space for the published model ``repo_id`` into ``directory`` (created; must be empty)."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ValueError(
            f"--model must be a Hugging Face Hub repo id like 'me/tunable-dncnn', got {repo_id!r}"
        ) from None
    if Path(repo_id).exists():
        raise ValueError(
            f"{repo_id} is a local folder; a Space loads models from the Hub: push it first (push_to_hub)"
        )
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ValueError(f"{directory} is not empty; give a new folder for the Space")
    config = read_config(repo_id)  # fails here, not in the Space, when the model cannot be read
    info = config.get("info", {})
    title = info.get("name") or f"Tunable {config['base']['architecture']} (p = {config['p']})"
    meta = {
        "title": title[:60],
        "emoji": "🎛️",
        "colorFrom": "indigo",
        "colorTo": "pink",
        "sdk": "gradio",
        "sdk_version": _gradio_version(),
        "app_file": "app.py",
        "pinned": False,
        "license": info.get("license") or "apache-2.0",
        "models": [repo_id],
        "tags": ["tunify", "tunable-convolutions"],
        "short_description": f"Tune {repo_id} at inference with ω sliders"[:60],
    }
    yaml = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in meta.items())
    files = {
        "app.py": APP.format(repo=repo_id),
        "requirements.txt": f"tunify[app]>={__version__}\n",
        "README.md": README.format(
            yaml=yaml, title=title, description=info.get("description", ""), repo=repo_id
        ),
    }
    for name, text in files.items():
        atomic_write(directory / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return directory
