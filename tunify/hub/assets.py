"""The files shipped inside the package: a sample image and the embedded default denoiser."""

from __future__ import annotations

from pathlib import Path

from .config import CONFIG_NAME

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLE_IMAGE = ASSETS / "sample.png"
DEFAULT_MODEL_DIR = ASSETS / "default_denoiser"


def embedded_model_dir() -> Path:
    """The save_pretrained folder of the embedded denoiser (what the CLI uses without ``--model``)."""
    if not (DEFAULT_MODEL_DIR / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"the embedded model is missing from this installation ({DEFAULT_MODEL_DIR}): reinstall tunify"
        )
    return DEFAULT_MODEL_DIR
