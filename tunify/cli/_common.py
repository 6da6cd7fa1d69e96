"""Shared wiring of the commands: which model, which ω, reading images."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..convert import TunableModel
from ..data import read_image
from ..data.io import IMAGE_EXTENSIONS
from ..hub import embedded_model_dir, from_pretrained


class UsageError(ValueError):
    """Bad command-line input: reported as one line, exit status 2."""


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="REPO_OR_DIR",
        help="a save_pretrained folder or Hub repo id (default: the embedded model)",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hugging Face cache only")
    parser.add_argument(
        "--device", type=device_arg, default="cpu", help="torch device to run on (default: cpu)"
    )


def device_arg(text: str) -> str:
    """A torch device this machine has: ``--device cuda`` without a GPU is a one-line usage error, not a
    failure deep inside the first ``.to()``."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.mps, torch.xpu …
    if device.type == "cpu" or not hasattr(backend, "is_available"):
        return text
    if not backend.is_available():
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has no {device.type} device (torch.{device.type}.is_available() is False)"
        )
    count = backend.device_count() if hasattr(backend, "device_count") else None
    if device.index is not None and count is not None and device.index >= count:
        raise argparse.ArgumentTypeError(f"{text}: this machine has {count} {device.type} device(s)")
    return text


def _overlap(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of pixels or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_tiling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tile", type=int, default=512, help="tile side in pixels for large images (default 512)"
    )
    parser.add_argument(
        "--overlap",
        type=_overlap,
        default="auto",
        help="overlap between tiles in pixels, or 'auto' (default): measured for the network, so the "
        "seams are invisible (4x how far its output depends on its input)",
    )


def load_model(args: argparse.Namespace) -> TunableModel:
    """The model named by --model, else the embedded one."""
    return from_pretrained(
        args.model or embedded_model_dir(),
        revision=args.revision,
        local_files_only=args.local_files_only,
        map_location=args.device,
    )


def parse_omega(text: str, p: int, allow_extrapolation: bool = False, name: str = "--omega") -> torch.Tensor:
    """``"0.3,0.7"`` -> tensor (p,), with errors that say what was expected (``name``: what the user typed
    into, the option or the app's field)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be {p} comma-separated numbers, got {text!r}") from None
    if any(math.isnan(v) for v in values):
        raise UsageError(f"{name} contains NaN ({text}): give {p} numbers in [0, 1]")
    if any(math.isinf(v) for v in values):
        raise UsageError(f"{name} contains an infinite value ({text}): give {p} numbers in [0, 1]")
    if len(values) != p:
        raise UsageError(
            f"{name} has {len(values)} value(s) but the model has p = {p}: give {p}, e.g. {','.join(['0.5'] * p)}"
        )
    if not allow_extrapolation and any(not 0.0 <= v <= 1.0 for v in values):
        raise UsageError(f"{name} values must lie in [0, 1], got {text}")
    return torch.tensor(values)


def load_image(path: str, device: str) -> torch.Tensor:
    """An image file as a (1, 3, H, W) batch in [0, 1]."""
    if not Path(path).is_file():
        raise UsageError(f"image not found: {path}")
    return read_image(path)[None].to(device)


def check_image_output(path: str) -> None:
    """Refuse an output file name tunify cannot write as an image, before any model is loaded or run."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        found = f"'{suffix}'" if suffix else "no extension"
        raise UsageError(
            f"-o {path}: {found} is not an image format tunify writes; use one of {', '.join(IMAGE_EXTENSIONS)}"
        )


def omega_option_values(argv: list[str]) -> list[str]:
    """``--omega -0.1,1`` as ``--omega=-0.1,1``: argparse takes a value starting with '-' for an option
    unless it is a single negative number, which would hide the range error behind "expected one argument"."""
    out: list[str] = []
    values = iter(argv)
    for arg in values:
        value = next(values, None) if arg == "--omega" else None
        if value is not None and len(value) > 1 and value[0] == "-" and value[1] in "0123456789.ni":
            out.append(f"--omega={value}")
        else:
            out.extend(a for a in (arg, value) if a is not None)
    return out


@contextmanager
def network_errors(image: str, x: torch.Tensor) -> Iterator[None]:
    """A network that cannot run on an input (smaller than its padding, out of memory) says so as a user
    error naming the image, not as tunify's internal error."""
    try:
        yield
    except RuntimeError as error:
        h, w = x.shape[-2:]
        raise UsageError(f"the model cannot run on {image} ({w}x{h}): {error}") from error
