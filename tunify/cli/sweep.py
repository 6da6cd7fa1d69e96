"""``tunify sweep IMAGE -o strip.png``: the same image at several ω, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ..evaluate import omega_grid, tuning_strip
from ..evaluate.report import format_omega
from ..inference import auto_overlap, for_images, tiled_forward
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sweep", help="write a strip of a model's outputs across ω")
    parser.add_argument("image", help="input image")
    parser.add_argument("-o", "--output", required=True, help="strip PNG to write")
    add_model_args(parser)
    parser.add_argument("--steps", type=int, default=5, help="points per ω axis (default 5)")
    parser.add_argument(
        "--omega", action="append", help="an ω to show instead of the grid, e.g. 0.3,0.7 (repeatable)"
    )
    parser.add_argument(
        "--crop", type=int, default=256, help="center crop side shown in the strip (0: whole image)"
    )
    add_tiling_args(parser)
    parser.set_defaults(run=run)


def _center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    if size <= 0:
        return x
    h, w = x.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return x[..., top : top + size, left : left + size]


def run(args: argparse.Namespace) -> int:
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    check_image_output(args.output)
    x = _center_crop(load_image(args.image, args.device), args.crop)
    model = load_model(args)
    values = torch.linspace(0, 1, args.steps).tolist()
    grid = not args.omega and model.config.independent and model.p == 2  # every (ω1, ω2), corners included
    if args.omega:
        omegas = torch.stack([parse_omega(o, model.p, model.config.allow_extrapolation) for o in args.omega])
    elif model.config.independent:  # independent knobs: the line ω1 + ω2 = 1 would miss (0, 0) and (1, 1)
        omegas = omega_grid(model.p, values if model.p <= 2 else (0.0, 1.0), mode="full").float()
    else:
        omegas = omega_grid(model.p, values).float()
    panels = []
    runner = for_images(model, x, omegas[0])
    overlap = args.overlap
    if overlap == "auto" and max(x.shape[-2:]) > args.tile:  # measured once for the whole sweep
        with network_errors(args.image, x):
            overlap = auto_overlap(runner, x, omegas[0], args.tile)
    for omega in omegas:
        with network_errors(args.image, x):
            y = tiled_forward(runner, x, omega, tile=args.tile, overlap=overlap, progress=False)
        panels.append((y[0].float().cpu(), f"ω={format_omega(omega.tolist())}"))
    shown = (F.interpolate(x, size=panels[0][0].shape[-2:], mode="nearest")[0].cpu(), "input")  # SR: larger
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if grid:  # one row per ω1, one column per ω2, the input alone in a first column
        rows = [panels[i : i + args.steps] for i in range(0, len(panels), args.steps)]
        cells = [cell for r, row in enumerate(rows) for cell in (shown if r == 0 else None, *row)]
        path = tuning_strip(cells, args.output, max_cols=args.steps + 1)
    else:
        path = tuning_strip([shown, *panels], args.output)
    print(f"wrote {path} ({len(omegas)} ω)")
    return 0
