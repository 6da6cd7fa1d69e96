"""Image I/O: files <-> float tensors in [0, 1], the one image format used across tunify."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


def list_images(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All image files under `root` (recursive), sorted so that dataset indices are stable across runs."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def read_image_uint8(path: str | Path, *, gray_to_rgb: bool = True) -> torch.Tensor:
    """Decode an image to a uint8 tensor (C, H, W); uint8 is 4x smaller than float, so caches keep this form.

    RGB(A)/palette images come back as 3 channels; greyscale images as 3 identical channels when
    `gray_to_rgb` is true, else as 1 channel.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = "L" if (im.mode in ("L", "LA", "I;16", "I", "1") and not gray_to_rgb) else "RGB"
            arr = np.asarray(im.convert(mode))
    except FileNotFoundError as e:
        raise ImageReadError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from e
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # copy: PIL's buffer is read-only


def read_image(path: str | Path, *, gray_to_rgb: bool = True) -> torch.Tensor:
    """Read a PNG/JPEG/... file as a float tensor (3, H, W) in [0, 1], RGB (see `read_image_uint8`)."""
    return to_float(read_image_uint8(path, gray_to_rgb=gray_to_rgb))


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 in [0, 1]."""
    return img.float().div_(255.0)


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8 levels (clamped, rounded half to even like numpy), on the CPU."""
    return img.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu()


def write_image(img: torch.Tensor, path: str | Path) -> Path:
    """Write a float image (3, H, W) or (1, H, W) in [0, 1] as 8-bit PNG (or whatever the suffix says).

    Values are clamped to [0, 1] and rounded to uint8; parent folders are created.
    """
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"write_image expects a (3, H, W) or (1, H, W) tensor, got shape {tuple(img.shape)}")
    arr = to_uint8(img).numpy().transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)
    return path
