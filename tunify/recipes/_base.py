"""What every recipe is made of: the :class:`Recipe` description and the building blocks recipes share.

A recipe module only says what is particular to it (its objectives, degradation and network) by filling a
:class:`Recipe` from these blocks; :mod:`tunify.recipes._run` runs any recipe the same way (train, sweep,
publish) and :mod:`tunify.recipes._cli` is its command line, so ``--preset smoke`` runs the very code path
of a full run, only smaller.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import tunify
import tunify.zoo as zoo
from tunify.data import ImageFolderEval, ImageFolderPatches, build_degradation, make_patch_loader
from tunify.objectives import ParametricMultiLoss
from tunify.recipes._config import ConfigError

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
