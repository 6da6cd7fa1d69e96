"""The machinery every recipe shares: command line, config, building the run, training, sweep and publishing.

A recipe module only says what is particular to it (its objectives, degradation and network) by filling a
:class:`Recipe`; :func:`main` does the rest in the same way for all of them, so ``--preset smoke`` runs the
very code path of a full run, only smaller.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

import tunify
import tunify.zoo as zoo
from tunify.convert import CheckpointError, TunableModel
from tunify.convert.io import load_strict
from tunify.data import ImageFolderEval, ImageFolderPatches, build_degradation, make_patch_loader
from tunify.evaluate import sweep
from tunify.hub.config import WEIGHTS_NAME
from tunify.objectives import ParametricMultiLoss, build_sampler
from tunify.recipes._config import (
    ConfigError,
    apply_overrides,
    apply_preset,
    config_path,
    flat_keys,
    load_config,
)
from tunify.train import TrainConfig, Trainer, dist_info, load_weights, save_weights, train_two_stage
from tunify.train.trainer import WEIGHTS_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
#: ω of the (reconstruction, noise preservation) recipes, the paper's denoising pair.
DENOISING_EFFECTS = (
    ("reconstruction", "fidelity: removes the noise (L1 to the clean image)"),
    ("noise_preservation", "keeps a fraction of the input noise (ν = 0.9 at 1): more grain and texture"),
)


@dataclass
class Recipe:
    """What makes one recipe: its name, a one-line summary and how to build its parts from the config.

    ``build_model(cfg)`` returns the plain (not yet tunable) network; ``build_loss(cfg)`` the parametric
    multi-loss; ``omega_effects`` gives, per ω_i, a short name and what moving it to 1 does (model card);
    ``sweep_options(cfg, model)`` adds keyword arguments to :func:`tunify.evaluate.sweep` (e.g. SR metrics);
    ``train_degradation(cfg)`` / ``eval_data(cfg)`` may replace the defaults (noise from ``degradation``).
    """

    name: str
    task: str
    summary: str
    build_model: Callable[[dict[str, Any]], nn.Module]
    build_loss: Callable[[dict[str, Any]], ParametricMultiLoss]
    omega_effects: Sequence[tuple[str, str]]
    sweep_options: Callable[[dict[str, Any], nn.Module], dict[str, Any]] = field(
        default=lambda cfg, model: {}
    )
    eval_data: Callable[[dict[str, Any]], list[Any]] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    apply_arguments: Callable[[argparse.Namespace, dict[str, Any]], None] | None = None


# --- paths and building blocks ---------------------------------------------------------------------------


def resolve_path(path: str | Path) -> Path:
    """A data path as given, else relative to the repository root (configs say ``../shared/...``)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return (REPO_ROOT / p).resolve()


def load_network(cfg: dict[str, Any]) -> nn.Module:
    """The base network of ``cfg["model"]``: from ``init`` (a checkpoint file or the name of an official
    checkpoint, through ``tunify.zoo.load``), or freshly initialised from ``name`` (a ``tunify.zoo.create``
    name) or ``arch`` (a spec) when ``init`` is ``scratch``."""
    model_cfg = cfg["model"]
    init = model_cfg.get("init") or "scratch"
    overrides = dict(model_cfg.get("kwargs") or {})
    if init == "scratch":
        if model_cfg.get("name"):
            return zoo.create(model_cfg["name"], **overrides)
        if model_cfg.get("arch"):
            spec = dict(model_cfg["arch"])
            return zoo.build({**spec, "kwargs": {**spec.get("kwargs", {}), **overrides}})
        raise ConfigError("model.init is 'scratch' but neither model.name nor model.arch is set")
    path = resolve_path(init)
    try:  # a file, or the name of an official checkpoint (fetched into the torch hub cache)
        return zoo.load(path if path.is_file() else init)
    except zoo.CheckpointNotFoundError as error:
        raise ConfigError(f"model.init={init!r}: {error}; or start from --init scratch") from None


def convert_network(net: nn.Module, cfg: dict[str, Any]) -> tunify.TunableModel:
    """``tunify.convert(net, p, **default_tunable_targets(net))``: the layers the paper makes tunable;
    ``model.independent: true`` when the ω entries are independent knobs (a base copy is added);
    ``model.strategy`` and ``model.strategy_options`` choose how layers become tunable (``tunify.convert``).

    With ``model.anchor: i`` and a pretrained start, ``tunify.anchor`` keeps ω = e_i exactly the pretrained
    network (measured in benchmarks/README.md: it closes the fidelity gap at no cost in between)."""
    options = dict(cfg["model"].get("targets") or {})
    independent = bool(cfg["model"].get("independent", False))
    targets = zoo.default_tunable_targets(net, **options)
    strategy = cfg["model"].get("strategy") or "kernels"
    strategy_options = dict(cfg["model"].get("strategy_options") or {})
    tmodel = tunify.convert(
        net, cfg["p"], independent=independent, strategy=strategy, **strategy_options, **targets
    )
    anchor = cfg["model"].get("anchor")
    if anchor is not None and (cfg["model"].get("init") or "scratch") != "scratch":
        tunify.anchor(tmodel, int(anchor))
    return tmodel


def multi_loss(
    cfg: dict[str, Any], objectives: Sequence[Any] | None = None, **kwargs: Any
) -> ParametricMultiLoss:
    """The parametric multi-loss of ``cfg["objectives"]`` weighted by ``cfg["loss_weights"]`` (λ_i) and,
    per objective, by the ω entry ``cfg["weight_by"]`` names (default ω_i; null: a constant weight)."""
    kwargs.setdefault("weight_by", cfg.get("weight_by"))
    return ParametricMultiLoss(
        objectives if objectives is not None else cfg["objectives"],
        cfg.get("loss_weights"),
        num_params=cfg["p"],
        **kwargs,
    )


def train_loader(cfg: dict[str, Any]) -> torch.utils.data.DataLoader:
    """Random patches of ``data.train_dir`` degraded per batch by ``degradation`` (None: input = clean)."""
    data = cfg["data"]
    dataset = ImageFolderPatches(
        resolve_path(data["train_dir"]),
        data["patch_size"],
        patches_per_image=data.get("patches_per_image", 1),
        cache=data.get("cache", True),
    )
    degradation = build_degradation(cfg["degradation"]) if cfg.get("degradation") else None
    return make_patch_loader(
        dataset, degradation, batch_size=cfg["train"]["batch_size"], seed=cfg["train"]["seed"]
    )


def default_eval_data(cfg: dict[str, Any]) -> list[Any]:
    """One ``ImageFolderEval`` per eval set: ``data.val_dir`` with ``eval.degradation``, then ``eval.extra``."""
    ev = cfg["eval"]
    sets = [{"dir": cfg["data"]["val_dir"], "degradation": ev.get("degradation")}, *(ev.get("extra") or [])]
    out = []
    for s in sets:
        deg = s.get("degradation")
        ds = ImageFolderEval(
            resolve_path(s["dir"]),
            build_degradation(deg) if deg else None,
            seed=ev.get("seed", 0),
            crop=s.get("crop", ev.get("crop")),
            multiple_of=ev.get("multiple_of", 1),
        )
        out.append(limit(ds, ev.get("max_images")))
    return out


class _Subset(torch.utils.data.Dataset):
    """The first ``n`` items of an eval set, keeping its ``name``/``degradation_label`` for the sweep rows."""

    def __init__(self, dataset: Any, n: int) -> None:
        self.dataset, self.n = dataset, min(n, len(dataset))
        self.name = getattr(dataset, "name", type(dataset).__name__)
        self.degradation_label = getattr(dataset, "degradation_label", "unknown")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]


def limit(dataset: Any, n: int | None) -> Any:
    return dataset if not n or n >= len(dataset) else _Subset(dataset, n)


# --- command line ----------------------------------------------------------------------------------------


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


def train_config(cfg: dict[str, Any]) -> TrainConfig:
    """The ``train`` section as a validated :class:`TrainConfig` (YAML lists become tuples)."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()})


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Built:
    """Everything a run needs, built from the config (exposed so tests can build without training)."""

    model: tunify.TunableModel
    loss: ParametricMultiLoss
    sampler: Any
    loader: torch.utils.data.DataLoader
    train_config: TrainConfig


def build(recipe: Recipe, cfg: dict[str, Any]) -> Built:
    """Network (converted), loss, ω sampler, data loader and trainer config of a run."""
    torch.manual_seed(cfg["train"]["seed"])
    tmodel = convert_network(recipe.build_model(cfg), cfg)
    tmodel.info.update(model_info(recipe, cfg))
    sampler_cfg = dict(cfg["sampler"])
    sampler = build_sampler(sampler_cfg.pop("name"), p=cfg["p"], **sampler_cfg)
    return Built(tmodel, recipe.build_loss(cfg), sampler, train_loader(cfg), train_config(cfg))


def model_info(recipe: Recipe, cfg: dict[str, Any]) -> dict[str, Any]:
    """``TunableModel.info`` (schema: ``tunify.hub.INFO_SCHEMA``): task, what each ω_i does, training setup."""
    info: dict[str, Any] = {
        "task": recipe.task,
        "description": recipe.summary,
        "objectives": [
            {"name": name, "omega_index": i, "description": effect}
            for i, (name, effect) in enumerate(recipe.omega_effects)
        ],
        "training": {
            "recipe": recipe.name,
            "init": str(cfg["model"].get("init") or "scratch"),
            "data": cfg["data"]["train_dir"],
            "patch_size": cfg["data"]["patch_size"],
            "degradation": cfg.get("degradation"),
            "objectives": cfg.get("objectives"),
            "loss_weights": cfg.get("loss_weights"),
            "omega_sampling": cfg["sampler"],
            "train": cfg["train"],
        },
    }
    if cfg.get("license"):
        info["license"] = cfg["license"]
    return json.loads(json.dumps(info, default=str))


def metrics_info(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sweep rows as ``{"<dataset> <degradation>": {"ω=(…)": {"psnr": …, "psnr_eta": …, "ssim": …}}}``."""
    out: dict[str, Any] = {}
    for row in rows:
        omega = "ω=(" + ", ".join(f"{v:g}" for v in row["omega"]) + ")"
        scores = {k: round(row[k], 4) for k in ("psnr", "psnr_eta", "ssim", "lpips") if k in row}
        out.setdefault(f"{row['dataset']} {row['degradation']}", {})[omega] = {
            **scores,
            "n_images": row["n_images"],
        }
    return out


def evaluate(recipe: Recipe, cfg: dict[str, Any], model: nn.Module, out: Path) -> list[dict[str, Any]]:
    """ω sweep of every eval set; the first writes ``out/sweep.*``, the others ``out/sweeps/<ii>_<name>/``."""
    datasets = recipe.eval_data(cfg) if recipe.eval_data is not None else default_eval_data(cfg)
    grid, omegas = cfg["eval"].get("grid", "line"), cfg["eval"].get("omegas")
    rows: list[dict[str, Any]] = []
    for i, ds in enumerate(datasets):
        folder = out if i == 0 else out / "sweeps" / f"{i:02d}_{getattr(ds, 'name', 'set')}"
        rows += sweep(
            model,
            ds,
            omegas,
            out_dir=folder,
            grid=grid,
            progress=cfg["train"].get("progress", True),
            max_batch=cfg["eval"].get("max_batch", 8),
            per_sample=cfg["eval"].get("per_sample", True),
            **recipe.sweep_options(cfg, model),
        )
    return rows


def run(
    recipe: Recipe,
    cfg: dict[str, Any],
    out: Path,
    *,
    resume: bool = False,
    eval_only: bool = False,
    weights: str | Path | None = None,
    push_to_hub: str | None = None,
) -> Path:
    """Train (unless ``eval_only``), sweep and write the publishable folder ``out/pretrained``; returns it.

    Under ``torchrun`` every rank trains and only rank 0 writes the run config, sweeps and publishes
    (with ``eval_only`` the other ranks return at once).
    """
    main_rank = dist_info().is_main
    if eval_only and not main_rank:  # evaluation is not data-parallel: rank 0 does all of it
        return out / "pretrained"
    out.mkdir(parents=True, exist_ok=True)
    built = build(recipe, cfg)
    if eval_only:
        if weights != "init":
            load_trained(built.model, Path(weights or out / WEIGHTS_FILE))
    else:
        if main_rank:
            (out / "config.yaml").write_text(_dump(cfg))
        start = time.time()
        if cfg["model"].get("two_stage"):
            # the AdaFM/FTN papers' protocol: a pretrained init is level A already; from scratch, train it
            scratch = (cfg["model"].get("init") or "scratch") == "scratch"
            config_a = built.train_config if scratch else None
            train_two_stage(built.model, built.loss, built.loader, config_a, built.train_config, out)
            if main_rank:
                save_weights(built.model, out / WEIGHTS_FILE)  # where --eval-only looks
        else:
            trainer = Trainer(
                built.model, built.loss, built.sampler, built.loader, built.train_config, out, resume=resume
            )
            trainer.fit()
            built.model.load_state_dict(trainer.inference_weights())
        if not main_rank:
            return out / "pretrained"
        minutes = (time.time() - start) / 60
        built.model.info["training"]["wall_minutes"] = round(minutes, 2)
        print(f"[{recipe.name}] trained {built.train_config.total_steps} steps in {minutes:.1f} min")
    rows = evaluate(recipe, cfg, built.model, out)
    built.model.info["metrics"] = metrics_info(rows)
    folder = built.model.save_pretrained(out / "pretrained", sweep_dir=out)
    print(f"[{recipe.name}] sweep: {out / 'sweep.md'}; publishable folder: {folder}")
    if push_to_hub:
        url = built.model.push_to_hub(push_to_hub, sweep_dir=out)
        print(f"[{recipe.name}] pushed to {url}")
    return Path(folder)


def load_trained(model: TunableModel, weights: Path) -> None:
    """Load a run's ``weights.safetensors`` or a published folder (or its ``model.safetensors``), strictly.

    The first holds the :class:`TunableModel`'s state dict, the second its base network's (no
    ``base_model.`` prefix); either must match the converted network tensor for tensor.
    """
    if weights.is_dir():
        weights = weights / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"--eval-only needs trained weights: {weights} is missing")
    try:
        state = load_weights(weights)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({error})") from None
    prefix = "base_model."
    if state and all(key.startswith(prefix) for key in state):
        state = {key.removeprefix(prefix): value for key, value in state.items()}
    load_strict(model, state, str(weights))


def _dump(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(cfg, default=str)), sort_keys=False)


def main(recipe: Recipe, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tunify.recipes.<name>``."""
    parser = build_parser(recipe)
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = resolve_config(recipe, args)
    except ConfigError as e:
        parser.error(str(e))
    if args.print_config:
        sys.stdout.write(_dump(cfg))
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
