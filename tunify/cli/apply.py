"""``tunify apply IMAGE --omega 0.3,0.7 -o OUT``: one image through a tunable model at one ω, any size."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import grey_bit_depth, read_alpha, write_image
from ..inference import tiled_forward
from ._common import add_model_args, load_image, load_model, parse_omega

SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")  # formats that store 16-bit greyscale
ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")  # formats that store transparency


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("apply", help="run a tunable model on an image at a chosen ω")
    parser.add_argument("image", help="input image (PNG, JPEG, ...)")
    parser.add_argument(
        "--omega", help="comma-separated ω, one value per tunable parameter (default: all 0.5)"
    )
    parser.add_argument("-o", "--output", required=True, help="output image path")
    add_model_args(parser)
    parser.add_argument(
        "--tile", type=int, default=512, help="tile side in pixels for large images (default 512)"
    )
    parser.add_argument(
        "--overlap", type=int, default=32, help="overlap between tiles in pixels (default 32)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    x = load_image(args.image, args.device)
    model = load_model(args)
    omega_text = args.omega or ",".join(["0.5"] * model.p)
    omega = parse_omega(omega_text, model.p, model.config.allow_extrapolation)
    y = tiled_forward(model, x, omega, tile=args.tile, overlap=args.overlap, progress=not args.no_progress)
    path = write_result(y, args.image, args.output, text=provenance(omega_text, args.model))
    print(f"wrote {path} ({y.shape[-1]}x{y.shape[-2]}, ω = {omega_text})")
    return 0


def provenance(omega: str, model: str | None, **extra: str) -> dict[str, str]:
    """The PNG text chunks of a result: the ω it was made at and the model, so the image says how to remake it."""
    return {"omega": omega, "model": model or "tunify embedded default denoiser", **extra}


def write_result(y: torch.Tensor, source: str | Path, output: str | Path, *, text: dict[str, str]) -> Path:
    """Write the network output ``y`` (1, 3, H, W) for the image file ``source`` as that image came in.

    A greyscale source gets a greyscale result at its bit depth (16-bit where the format stores it), a source
    with transparency gets its alpha back (resized for super-resolution); ``text`` goes into PNG metadata.
    """
    suffix = Path(output).suffix.lower()
    bits = grey_bit_depth(source)
    if bits is not None:  # the model saw three equal channels; give back what came in, at its bit depth
        y = y.mean(dim=1, keepdim=True)
    alpha = read_alpha(source) if suffix in ALPHA_SUFFIXES else None
    if alpha is not None:  # transparency is not the network's business: carried over (resized for SR)
        y = torch.cat([y, F.interpolate(alpha[None].to(y), size=y.shape[-2:], mode="bilinear")], dim=1)
    sixteen = bits == 16 and alpha is None and suffix in SIXTEEN_BIT_SUFFIXES
    return write_image(y[0], output, bits=16 if sixteen else 8, text=text)
