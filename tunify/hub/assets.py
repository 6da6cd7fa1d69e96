"""The files shipped inside the package (a sample image and, once trained, the embedded default denoiser)
and the real pretrained denoiser of ``../shared`` that stands in for the latter until it exists."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import zoo
from .config import CONFIG_NAME

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLE_IMAGE = ASSETS / "sample.png"
DEFAULT_MODEL_DIR = ASSETS / "default_denoiser"
CDNCNN = Path("pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth")


def embedded_model_dir() -> Path | None:
    """The save_pretrained folder of the embedded denoiser, or None while none is shipped."""
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / CONFIG_NAME).is_file() else None


def find_shared() -> Path | None:
    """``../shared`` relative to the working directory, else relative to the repository root."""
    for candidate in (Path.cwd().parent / "shared", Path(__file__).resolve().parents[3] / "shared"):
        if candidate.is_dir():
            return candidate
    return None


def pretrained_cdncnn() -> nn.Module | None:
    """CDnCNN-B colour blind (Zhang et al. 2017; ``denoised = noisy − body(noisy)``) from ``../shared``.

    The file holds the bare ``nn.Sequential``; with a ``model.`` prefix it is spandrel's DnCNN (which does
    the residual subtraction itself), so the result is describable and rebuildable by ``tunify.zoo``.
    Returns None when ``../shared`` or the file is absent.
    """
    shared = find_shared()
    if shared is None or not (shared / CDNCNN).is_file():
        return None
    state = torch.load(shared / CDNCNN, map_location="cpu", weights_only=True)
    return zoo.load({f"model.{k}": v for k, v in state.items()})
