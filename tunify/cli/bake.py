"""``tunify bake [--model REPO_OR_DIR] --omega 1,0 -o net.safetensors``: a plain network fixed at one ω."""

from __future__ import annotations

import argparse

from ..convert import bake
from ..train.checkpoint import save_weights
from ._common import add_model_args, load_model, parse_omega


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bake", help="fix ω and write the ordinary network's state dict (safetensors), e.g. to fine-tune it"
    )
    parser.add_argument("--omega", required=True, help="comma-separated ω, e.g. 1,0")
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the .safetensors file to write (atomically)"
    )
    add_model_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tmodel = load_model(args)
    omega = parse_omega(args.omega, tmodel.p, tmodel.config.allow_extrapolation)
    plain = bake(tmodel, omega)
    save_weights(plain, args.output)
    params = sum(t.numel() for t in plain.parameters())
    print(f"baked {type(plain).__name__} at ω = ({args.omega}): {params:,} parameters -> {args.output}")
    return 0
