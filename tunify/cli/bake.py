"""``tunify bake [--model REPO_OR_DIR] --omega 1,0 -o net.safetensors``: a plain network fixed at one ω.

The file's metadata records the ω, the model it was baked from, the base architecture and what each ω_i
meant, so ``tunify info net.safetensors`` can say what the file is long after it was written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._version import __version__
from ..convert import bake
from ..hub import describe_base, embedded_model_dir
from ..train.checkpoint import save_weights
from ._common import UsageError, add_model_args, load_model, parse_omega

#: safetensors metadata key of a baked file (a JSON object).
BAKED_KEY = "tunify_baked"


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
    if Path(args.output).suffix.lower() != ".safetensors":
        raise UsageError(f"-o {args.output}: bake writes safetensors only; name the file *.safetensors")
    tmodel = load_model(args)
    omega = parse_omega(args.omega, tmodel.p, tmodel.config.allow_extrapolation)
    base = describe_base(tmodel.base_model)  # before baking: bake gives the base network back
    plain = bake(tmodel, omega)
    record = {
        "omega": omega.tolist(),
        "source": args.model or f"embedded default model ({embedded_model_dir().name})",
        "revision": args.revision,
        "base": base,
        "p": tmodel.p,
        "objectives": tmodel.info.get("objectives", []),
        "task": tmodel.info.get("task"),
        "tunify_version": __version__,
    }
    record = {k: v for k, v in record.items() if v not in (None, [])}
    save_weights(plain, args.output, metadata={BAKED_KEY: json.dumps(record, ensure_ascii=False)})
    params = sum(t.numel() for t in plain.parameters())
    print(f"baked {type(plain).__name__} at ω = ({args.omega}): {params:,} parameters -> {args.output}")
    return 0
