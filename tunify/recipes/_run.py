"""Running a recipe: build the run from its config, train, sweep every eval set, write the publishable folder.

Every file a run writes goes through :mod:`tunify._atomic` (checkpoints, weights, the model folder) or is
created with ``open``, so all of them get the permissions the process's umask gives new files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

import tunify
from tunify._state_dict import load_state
from tunify.convert import CheckpointError, TunableModel
from tunify.convert.io import load_strict
from tunify.evaluate import sweep
from tunify.hub.config import WEIGHTS_NAME
from tunify.objectives import ParametricMultiLoss, build_sampler
from tunify.recipes._base import Recipe, convert_network, default_eval_data, train_loader
from tunify.train import TrainConfig, Trainer, dist_info, load_weights, save_weights, train_two_stage
from tunify.train.trainer import WEIGHTS_FILE


def train_config(cfg: dict[str, Any]) -> TrainConfig:
    """The ``train`` section as a validated :class:`TrainConfig` (YAML lists become tuples)."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()})


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
    init = str(cfg["model"].get("init") or "scratch")
    if (
        init != "scratch"
    ):  # the card's "original weights": a file's name (never this machine's path) or a zoo name
        info["init"] = Path(init).name
    if cfg.get("license"):
        info["license"] = cfg["license"]
    note = run_note(cfg)
    if note:
        info["note"] = note
    return json.loads(json.dumps(info, default=str))


def run_note(cfg: dict[str, Any]) -> str | None:
    """The config's ``note`` (the smoke preset sets one) with the learning rate and steps that justify it."""
    if not cfg.get("note"):
        return None
    return f"{cfg['note']}: lr {cfg['train']['lr']:g}, {cfg['train']['total_steps']} steps"


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
            note=run_note(cfg),
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
            (out / "config.yaml").write_text(dump_config(cfg))
        start = time.time()
        if cfg["model"].get("two_stage"):
            # the AdaFM/FTN papers' protocol: a pretrained init is level A already; from scratch, train it
            scratch = (cfg["model"].get("init") or "scratch") == "scratch"
            config_a = built.train_config if scratch else None
            train_two_stage(
                built.model, built.loss, built.loader, config_a, built.train_config, out, resume=resume
            )
            if main_rank:
                save_weights(built.model, out / WEIGHTS_FILE)  # where --eval-only looks
        else:
            trainer = Trainer(
                built.model, built.loss, built.sampler, built.loader, built.train_config, out, resume=resume
            )
            trainer.fit()
            load_state(built.model, trainer.inference_weights())
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


def dump_config(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(cfg, default=str)), sort_keys=False)
