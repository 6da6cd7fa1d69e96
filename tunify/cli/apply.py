"""``tunify apply IMAGE --omega 0.3,0.7 -o OUT``: one image through a tunable model at one ω, any size."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import grey_bit_depth, read_alpha, write_image
from ..inference import for_images, tiled_forward
from ._common import (
    UsageError,
    add_model_args,
    add_tiling_args,
    check_image_output,
    load_image,
    load_model,
    network_errors,
    parse_omega,
)
from ._omega_map import read_omega_map

SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")  # formats that store 16-bit greyscale
ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")  # formats that store transparency


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("apply", help="run a tunable model on an image at a chosen ω")
    parser.add_argument("image", help="input image (PNG, JPEG, ...)")
    parser.add_argument(
        "--omega", help="comma-separated ω, one value per tunable parameter (default: all 0.5)"
    )
    parser.add_argument(
        "--omega-map",
        metavar="MAP",
        help="an image giving every pixel its own ω: greyscale blends the two ω of --omega-range "
        "(black → first, white → second), or one channel per ω entry; resized to the image",
    )
    parser.add_argument(
        "--omega-range",
        nargs=2,
        metavar=("A", "B"),
        help="ω at black and at white of a greyscale --omega-map (default for p = 2: 0,1 and 1,0)",
    )
    parser.add_argument("-o", "--output", required=True, help="output image path")
    add_model_args(parser)
    add_tiling_args(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_image_output(args.output)
    x = load_image(args.image, args.device)
    model = load_model(args)
    if args.omega_map and args.omega:
        raise UsageError("give either --omega or --omega-map, not both")
    if args.omega_range and not args.omega_map:
        raise UsageError("--omega-range goes with --omega-map")
    if args.omega_map:
        omega = read_omega_map(
            args.omega_map, model.p, tuple(x.shape[-2:]), args.omega_range, model.config.allow_extrapolation
        ).to(x.device)
    else:
        omega = parse_omega(
            args.omega or ",".join(["0.5"] * model.p), model.p, model.config.allow_extrapolation
        )
    runner = for_images(model, x, omega)  # a greyscale network runs channel by channel
    with network_errors(args.image, x):
        y = tiled_forward(
            runner, x, omega, tile=args.tile, overlap=args.overlap, progress=not args.no_progress
        )
    if args.omega_map:
        entries = {"omega_map": Path(args.omega_map).name}
        if args.omega_range:
            entries["omega_range"] = " ".join(args.omega_range)
        used = f"ω map {args.omega_map}"
    else:
        entries = {"omega": args.omega or ",".join(["0.5"] * model.p)}
        used = f"ω = {entries['omega']}"
    path = write_result(y, args.image, args.output, text=provenance(args.model, **entries))
    print(f"wrote {path} ({y.shape[-1]}x{y.shape[-2]}, {used})")
    return 0


def provenance(model: str | None, **entries: str) -> dict[str, str]:
    """The PNG text chunks of a result: the ω it was made at and the model, so the image says how to remake it."""
    return {**entries, "model": model or "tunify embedded default denoiser"}


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
