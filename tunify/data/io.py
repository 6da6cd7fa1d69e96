"""Image I/O: files <-> float tensors in [0, 1], the one image format used across tunify."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

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


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")


def _decode(path: Path, gray_to_rgb: bool) -> np.ndarray:
    """(H, W, C) levels: uint16 for 16-bit greyscale files (PIL modes "I", "I;16"), else uint8."""
    try:
        with Image.open(path) as file:
            im = upright(file)
            if im.mode.startswith("I"):  # PIL's 8-bit conversion of these clips at 255: keep the 16 bits
                arr = np.asarray(im).astype(np.int64).clip(0, 65535).astype(np.uint16)
            elif im.mode == "F":  # 32-bit float greyscale (scientific TIFFs): PIL's 8-bit conversion clips
                arr = np.asarray(im, dtype=np.float32)
            else:
                grey = im.mode in GREY_MODES and not gray_to_rgb
                arr = np.asarray(im.convert("L" if grey else "RGB"))
    except FileNotFoundError as e:
        raise ImageReadError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from e
    if arr.dtype == np.float32:
        arr = _unit_floats(arr, path)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3 if gray_to_rgb else 1, axis=2)
    return arr


def _unit_floats(arr: np.ndarray, path: Path) -> np.ndarray:
    """A float image's values, which tunify reads as intensities in [0, 1]; anything else is refused."""
    low, high = float(np.min(arr)), float(np.max(arr))
    if not (low >= 0.0 and high <= 1.0):  # NaN fails both
        raise ImageReadError(
            f"cannot read image {path}: a float image must hold values in [0, 1], this one spans "
            f"[{low:.4g}, {high:.4g}]; scale it, or save it as 8/16-bit"
        )
    return arr


def upright(im: Image.Image) -> Image.Image:
    """The picture as viewers show it: a camera's EXIF orientation applied to the pixels (the outputs tunify
    writes carry no EXIF, so they would otherwise appear turned against their input)."""
    return ImageOps.exif_transpose(im)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # always a copy: PIL's buffer is read-only


def read_image_uint8(path: str | Path, *, gray_to_rgb: bool = True) -> torch.Tensor:
    """Decode an image to a uint8 tensor (C, H, W); uint8 is 4x smaller than float, so caches keep this form.

    RGB(A)/palette images come back as 3 channels; greyscale images as 3 identical channels when
    `gray_to_rgb` is true, else as 1 channel. 16-bit greyscale is rounded to 8 bits.
    """
    arr = _decode(Path(path), gray_to_rgb)
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype == np.float32:
        arr = np.round(arr * 255.0).astype(np.uint8)
    return _to_tensor(arr)


def read_image(path: str | Path, *, gray_to_rgb: bool = True) -> torch.Tensor:
    """Read a PNG/JPEG/... file as a float tensor (3, H, W) in [0, 1], RGB (see `read_image_uint8`).

    16-bit greyscale files keep their precision (levels / 65535), float greyscale ones (TIFF) their values.
    """
    arr = _decode(Path(path), gray_to_rgb)
    if arr.dtype == np.uint16:
        return _to_tensor(arr).float().div_(65535.0)
    if arr.dtype == np.float32:
        return _to_tensor(arr)
    return to_float(_to_tensor(arr))


def grey_bit_depth(path: str | Path) -> int | None:
    """16 or 8 for a greyscale image file, None for colour (from its header, without decoding the pixels).
    Float greyscale answers 16: the most precise greyscale tunify writes."""
    with Image.open(path) as im:
        if im.mode.startswith("I") or im.mode == "F":
            return 16
        return 8 if im.mode in GREY_MODES else None


def read_alpha(path: str | Path) -> torch.Tensor | None:
    """The alpha channel (1, H, W) in [0, 1] of an image that has one (RGBA, LA, palette transparency), else
    None. Networks see the colour channels only; callers put the alpha back on the output."""
    with Image.open(path) as file:
        im = upright(file)
        if "A" not in im.getbands() and "transparency" not in im.info:
            return None
        alpha = np.asarray(im.convert("RGBA").getchannel("A"))
    return to_float(torch.from_numpy(alpha.copy())[None])


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 in [0, 1]."""
    return img.float().div_(255.0)


def _levels(img: torch.Tensor, peak: float) -> torch.Tensor:
    """Float image in [0, 1] -> integer levels 0..peak as floats (clamped, rounded half to even), on the CPU."""
    return img.detach().float().clamp(0.0, 1.0).mul(peak).round().cpu()


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8 levels (clamped, rounded half to even like numpy), on the CPU."""
    return _levels(img, 255.0).to(torch.uint8)


def write_image(
    img: torch.Tensor, path: str | Path, *, bits: int = 8, text: dict[str, str] | None = None
) -> Path:
    """Write a float image (C, H, W) in [0, 1] as PNG (or whatever the suffix says): C = 1 grey, 2 grey +
    alpha, 3 RGB, 4 RGBA.

    Values are clamped to [0, 1] and rounded to 8-bit levels, or to 16-bit ones with ``bits=16`` (greyscale
    only: PIL has no other 16-bit mode); parent folders are created. ``text`` goes into a PNG's text chunks
    (how the image was made, readable with ``PIL.Image.open(path).text``); other formats have no such place.
    """
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3 or img.shape[0] not in (1, 2, 3, 4):
        raise ValueError(
            f"write_image expects a (C, H, W) tensor with C in 1..4, got shape {tuple(img.shape)}"
        )
    if bits not in (8, 16) or (bits == 16 and img.shape[0] != 1):
        raise ValueError(f"write_image writes 8-bit images, or 16-bit greyscale ones; got bits={bits}")
    arr = (
        _levels(img, 65535.0).numpy().astype(np.uint16) if bits == 16 else to_uint8(img).numpy()
    ).transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = None
    if text and path.suffix.lower() == ".png":
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)  # keys are Latin-1; values may be any text (iTXt)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path, pnginfo=info)
    return path
