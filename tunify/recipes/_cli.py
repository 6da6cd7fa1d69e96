"""The command line of every recipe: ``python -m tunify.recipes.<name> [options] [key.sub=value ...]``.

It only turns arguments into a config (file, preset, dedicated options, overrides) and calls
:func:`tunify.recipes._run.run`; errors a user can cause end in one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import tunify.zoo as zoo
from tunify.convert import CheckpointError
from tunify.recipes._base import Recipe
from tunify.recipes._config import (
    ConfigError,
    apply_overrides,
    apply_preset,
    config_path,
    flat_keys,
    load_config,
)
from tunify.recipes._run import dump_config, run, train_config


def build_parser(recipe: Recipe) -> argparse.ArgumentParser:
    """The options every recipe has; ``overrides`` are ``key.sub=value`` pairs applied last."""
    parser = argparse.ArgumentParser(
        prog=f"python -m tunify.recipes.{recipe.name}",
        description=f"{recipe.summary} Hyper-parameters come from recipes/{recipe.name}.yaml; "
        "change any of them with key.sub=value (e.g. train.lr=2e-4 train.total_steps=1000).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys: " + ", ".join(_help_keys(recipe)),
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (YAML values)")
    parser.add_argument("--config", type=Path, help=f"YAML config (default recipes/{recipe.name}.yaml)")
    parser.add_argument(
        "--preset", default="full", help="full (published schedule) or smoke (< 3 min on CPU)"
    )
    parser.add_argument(
        "--init",
        help="start from this checkpoint (loaded through tunify.zoo.load) or 'scratch' (sets model.init)",
    )
    parser.add_argument("--train-dir", help="folder of training images (sets data.train_dir)")
    parser.add_argument("--val-dir", help="folder of validation images (sets data.val_dir)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<recipe>-<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="skip training: sweep and publish trained weights (--weights)",
    )
    parser.add_argument(
        "--weights",
        help="with --eval-only: tunable weights (default OUT/weights.safetensors), a published folder or its "
        "model.safetensors, or 'init' for the converted initial network unchanged (it equals the original "
        "for every ω: a baseline)",
    )
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="upload the publishable folder to this Hub repo"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (torch.set_num_threads)")
    parser.add_argument("--print-config", action="store_true", help="print the final config and exit")
    if recipe.add_arguments is not None:
        recipe.add_arguments(parser)
    return parser


def _help_keys(recipe: Recipe) -> list[str]:
    path = config_path(recipe.name)
    if not path.is_file():
        return []
    cfg = apply_preset(load_config(path), None)
    return [k for k in flat_keys(cfg) if k.count(".") <= 1 and not k.split(".")[-1].isdigit()]


def resolve_config(recipe: Recipe, args: argparse.Namespace) -> dict[str, Any]:
    """File → preset → dedicated options (``--init`` ...) → ``key=value`` overrides, in that order."""
    cfg = apply_preset(load_config(args.config or config_path(recipe.name)), args.preset)
    direct: dict[str, Any] = {}
    if args.init is not None:
        direct["model.init"] = args.init
    if args.train_dir is not None:
        direct["data.train_dir"] = args.train_dir
    if args.val_dir is not None:
        direct["data.val_dir"] = args.val_dir
    cfg = apply_overrides(cfg, direct)
    if recipe.apply_arguments is not None:
        recipe.apply_arguments(args, cfg)
    cfg = apply_overrides(cfg, args.overrides)
    try:
        train_config(cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"train: {e}") from None
    return cfg


def main(recipe: Recipe, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tunify.recipes.<name>``."""
    parser = build_parser(recipe)
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = resolve_config(recipe, args)
    except ConfigError as e:
        parser.error(str(e))
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / f"{recipe.name}-{args.preset}"
    try:
        run(
            recipe,
            cfg,
            out,
            resume=args.resume,
            eval_only=args.eval_only,
            weights=args.weights,
            push_to_hub=args.push_to_hub,
        )
    except (ConfigError, CheckpointError, zoo.ZooError, FileNotFoundError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0
