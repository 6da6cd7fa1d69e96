"""``tunify convert CHECKPOINT --p 2 -o DIR``: an official checkpoint -> a tunable save_pretrained folder."""

from __future__ import annotations

import argparse

from .. import zoo
from ..convert import convert
from ..hub import save_pretrained


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("convert", help="make a pretrained checkpoint tunable and save it")
    parser.add_argument(
        "checkpoint",
        help="a .pth/.safetensors checkpoint whose architecture tunify.zoo detects, or an official checkpoint's "
        "file name (e.g. 001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth; downloaded once into the torch hub cache)",
    )
    parser.add_argument(
        "--p", type=int, default=2, help="number of tunable parameters (length of ω; default 2)"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="folder to write (save_pretrained)"
    )
    parser.add_argument("--include", metavar="REGEX", help="convert only layers whose full name matches")
    parser.add_argument("--exclude", metavar="REGEX", help="leave these layers alone")
    parser.add_argument("--prefix", help="select and strip this key prefix in the checkpoint (e.g. 'model.')")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = zoo.load(args.checkpoint, prefix=args.prefix)
    tmodel = convert(model, args.p, include=args.include, exclude=args.exclude)
    folder = save_pretrained(tmodel, args.output)
    report = tmodel.conversion_report()
    print(report)
    print(
        f"\n{len(report)} layers/tensors made tunable (p = {args.p}, {report.params_added:,} parameters added)"
    )
    print(f"saved to {folder}")
    return 0
