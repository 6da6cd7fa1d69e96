"""The two-stage protocol of AdaFM and FTN (and of any strategy whose copies share the pretrained tensor).

Stage A trains the network at one level (ω = e_A) with the added modules at rest; stage B freezes it and
trains only the modules of the other entry at ω = e_B; intermediate ω then interpolate between the two,
unsupervised. This is how the AdaFM and FTN papers train; tunify's parametric multi-loss (ω drawn at random,
every entry trained jointly) is the alternative, and ``benchmarks/strategies.py`` measures both.

A "level" is an index of the strategy's ω entries: i < p means ω = e_i; with independent ω entries, p means
the base corner ω = 0. φ stays frozen in both stages (at conversion it maps those ω to α = e_level exactly).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._state_dict import load_state
from ..convert import TunableModel
from ..layers import phi_parameters
from ..objectives import FunctionSampler
from .config import TrainConfig
from .trainer import Trainer

Stage = Literal["a", "b"]


def _sources(tmodel: TunableModel) -> list[nn.Module]:
    """The modules that organise their parameters per ω entry (``entry_parameters``/``base_parameters``)."""
    return [m for m in tmodel.modules() if hasattr(m, "entry_parameters") and hasattr(m, "base_parameters")]


def level_omega(tmodel: TunableModel, level: int) -> Tensor:
    """The ω of a level: e_level for level < p, 0 (the base corner) for level p with independent entries."""
    kernels = tmodel.config.kernels
    if not 0 <= level < kernels:
        raise ValueError(f"level must be in [0, {kernels - 1}] (an ω entry of this model), got {level}")
    omega = torch.zeros(tmodel.p)
    if level < tmodel.p:
        omega[level] = 1.0
    return omega


def stage_parameters(tmodel: TunableModel, stage: Stage, level: int) -> set[int]:
    """The ids of the parameters a stage trains.

    Stage A (at ``level``): everything but φ and the entries' added modules, except those of ``level``
    itself (for AdaFM and FTN at the reference level there are none: the plain network trains).
    Stage B (at ``level``): only the added modules of entry ``level``.
    """
    if stage not in ("a", "b"):
        raise ValueError(f"stage must be 'a' or 'b', got {stage!r}")
    level_omega(tmodel, level)  # checks the level
    sources = _sources(tmodel)
    if not sources:
        raise ValueError(
            "two-stage training needs a strategy whose copies share the pretrained tensor (adafm, ftn, lowrank, "
            "atoms); for the 'kernels' strategy use tunify.strategies.dni (one network per objective)"
        )
    own = {id(p) for s in sources for p in s.entry_parameters(level)}
    if stage == "b":
        if not own:
            raise ValueError(
                f"entry {level} has no added modules to train in stage B (it is the reference entry)"
            )
        return own
    entries = tmodel.config.kernels
    added = {id(p) for s in sources for i in range(entries) for p in s.entry_parameters(i)}
    phi = {id(p) for p in phi_parameters(tmodel)}
    return {id(p) for p in tmodel.parameters()} - added - phi | own


@contextlib.contextmanager
def training_stage(tmodel: TunableModel, stage: Stage, level: int) -> Iterator[TunableModel]:
    """Only the parameters of :func:`stage_parameters` require grad inside the block; restored after.

    Build the optimiser (the :class:`~tunify.train.Trainer`) inside the block: it skips frozen parameters.
    """
    trainable = stage_parameters(tmodel, stage, level)
    before = {id(p): p.requires_grad for p in tmodel.parameters()}
    try:
        for p in tmodel.parameters():
            p.requires_grad_(id(p) in trainable)
        yield tmodel
    finally:
        for p in tmodel.parameters():
            p.requires_grad_(before[id(p)])


def constant_omega_sampler(omega: Tensor) -> FunctionSampler:
    """A sampler that always draws ``omega`` (p,)."""
    row = omega.detach().float()
    return FunctionSampler(row.numel(), fn=lambda b, generator, device: row.expand(b, -1).clone())


def train_two_stage(
    tmodel: TunableModel,
    loss_fn: Any,
    train_loader: Any,
    config_a: TrainConfig | None,
    config_b: TrainConfig,
    out_dir: str | Path,
    *,
    levels: tuple[int, int] = (0, 1),
    resume: bool = False,
) -> TunableModel:
    """Train ``tmodel`` by the two-stage protocol and return it with its inference (EMA if any) weights.

    Args:
        tmodel: converted with ``adafm``, ``ftn`` (or ``lowrank``/``atoms``), e.g. from a pretrained network.
        loss_fn: the loss the trainer calls; with tunify's parametric multi-loss, ω = e_A selects objective A
            and ω = e_B objective B, exactly as in the papers' separate trainings.
        train_loader: the training data (as :class:`~tunify.train.Trainer` takes it).
        config_a: stage A's schedule, or None to skip it (the network is already trained at level A, e.g.
            a pretrained denoiser for the fidelity end).
        config_b: stage B's schedule.
        out_dir: run folder; each stage writes into its own subfolder ``stage_a``/``stage_b``.
        levels: (A, B), ω entries of the model (see :func:`level_omega`).
        resume: continue a stopped run from its last checkpoint (a finished stage A is read back, not
            retrained).

    Example:
        >>> tmodel = tunify.convert(net, p=2, strategy="adafm")
        >>> train_two_stage(tmodel, ParametricMultiLoss(["reconstruction", "noise_preservation"]), loader,
        ...                 None, TrainConfig(total_steps=20_000), "runs/adafm")
    """
    level_a, level_b = levels
    if level_a == level_b:
        raise ValueError(f"the two levels must differ, got {levels}")
    out_dir = Path(out_dir)
    for stage, level, config in (("a", level_a, config_a), ("b", level_b, config_b)):
        if config is None:
            continue
        with training_stage(tmodel, stage, level):
            sampler = constant_omega_sampler(level_omega(tmodel, level))
            stage_dir = out_dir / f"stage_{stage}"
            trainer = Trainer(tmodel, loss_fn, sampler, train_loader, config, stage_dir, resume=resume)
            trainer.fit()
            load_state(tmodel, trainer.inference_weights())
    return tmodel
