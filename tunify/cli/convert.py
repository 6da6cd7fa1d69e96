"""``tunify convert CHECKPOINT --p 2 -o DIR``: an official checkpoint -> a tunable save_pretrained folder.

The layers converted are those the recipes convert (:func:`tunify.zoo.default_tunable_targets`: NAFNet's β and
γ too, never SPAN's derived ``eval_conv``), narrowed by ``--include`` / ``--exclude``.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from torch import nn

from .. import zoo
from ..convert import convert
from ..convert.config import matches
from ..hub import save_pretrained
from ..strategies import get_strategy, strategy_names
from ._common import UsageError


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
    parser.add_argument(
        "--strategy",
        choices=strategy_names(),
        default="kernels",
        help="how layers become tunable (default: kernels, p full copies)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the strategy, e.g. --option rank=8 (repeat for more)",
    )
    parser.add_argument(
        "--independent",
        action="store_true",
        help="the ω entries are independent knobs, not a trade-off on the simplex (adds a base copy)",
    )
    parser.set_defaults(run=run)


def strategy_options(pairs: list[str]) -> dict[str, Any]:
    """``["rank=8", "overcomplete=2"]`` -> ``{"rank": 8, "overcomplete": 2}`` (JSON values, else strings)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option rank=8")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def name_filter(include: str | None, exclude: str | None) -> Any:
    """``filter_fn`` for tunify.convert from the command line's regexes, matched as ``include=``/``exclude=``
    are (the zoo's targets may use those two already)."""
    if include is None and exclude is None:
        return None
    try:
        for pattern in (include, exclude):
            re.compile(pattern or "")
    except re.error as error:
        raise UsageError(f"--include/--exclude: not a regular expression ({error})") from None

    def selected(_module: nn.Module, name: str) -> bool:
        return (include is None or matches(name, include)) and not matches(name, exclude)

    return selected


def run(args: argparse.Namespace) -> int:
    options = strategy_options(args.option)
    get_strategy(args.strategy, **options)  # unknown or bad options fail before the checkpoint is read
    model = zoo.load(args.checkpoint, prefix=args.prefix)
    tmodel = convert(
        model,
        args.p,
        independent=args.independent,
        strategy=args.strategy,
        filter_fn=name_filter(args.include, args.exclude),
        **zoo.default_tunable_targets(model),
        **options,
    )
    folder = save_pretrained(tmodel, args.output)
    report = tmodel.conversion_report()
    print(report)
    print(
        f"\n{len(report)} layers/tensors made tunable (p = {args.p}, strategy {args.strategy}, "
        f"{report.params_added:,} parameters added)"
    )
    print(f"saved to {folder}")
    return 0
