"""Tunable joint denoising and deblurring with two independent parameters: ω = (noise kept, sharpening).

    python -m tunify.recipes.deblur --init ../shared/pretrained/CDnCNN-B_color_blind/cdncnn_b_color_blind.pth
    python -m tunify.recipes.deblur --preset smoke --out runs/deblur-smoke

One ω-dependent objective (the paper's non-convex setting, Sec. 4): L1 to ỹ = y_η + ω_1 γ (y_η − g⊛y_η)
with y_η = y + ω_0 ν (z − y); ω = (0, 0) is fidelity, ω_0 keeps noise, ω_1 over-sharpens, independently.

Two stages (``restorer`` in the config; measured in benchmarks/README.md): the plain network is first
fine-tuned to restore (ω = (0, 0): L1 to the clean image, same data and degradation), then converted with a
base copy, and ``model.anchor: 2`` keeps ω = (0, 0) exactly that restorer while the other corners learn.
A pretrained denoiser has never deblurred; trained in one stage its copies learn to deblur, keep noise and
sharpen at once, and the restorative corner ended below the denoiser it started from.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunify._state_dict import load_state
from tunify.objectives import FunctionSampler, noise_preservation_target, unsharp_mask_target
from tunify.recipes._base import Recipe, multi_loss, resolve_path, train_loader
from tunify.recipes._cli import main
from tunify.recipes._run import train_config
from tunify.recipes.denoise import build_model as build_denoiser
from tunify.train import Trainer, load_weights, save_weights
from tunify.train.config import RUN_FIELDS

CORNERS = (
    "ω = (0, 0) restores: all noise and blur removed (the stage-1 restorer when anchored); "
    "(1, 0) keeps ν of the input noise, deblurred; (0, 1) deblurs and sharpens by γ beyond the clean image; "
    "(1, 1) keeps the noise and sharpens. The restorer is blind to the blur: on sharp images with little noise "
    "(σ = 5) (0, 0) scores ~1 dB below the denoiser it started from, and gains 0.4–1.7 dB on blurred ones "
    "(benchmarks/README.md)"
)


class _IgnoresOmega(nn.Module):
    """A plain network behind the trainer's ``model(x, omega=...)`` protocol, for the restorer stage."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, omega: Tensor) -> Tensor:
        return self.net(x)


def restorer_path(cfg: dict[str, Any]) -> Path:
    """Where stage 1 is saved and reused: ``restorer.weights``, else a file named by a hash of everything
    that defines it (init, architecture, data, degradation, objective and the stage's schedule, not how the
    run is carried out: :data:`~tunify.train.config.RUN_FIELDS`, so more loader workers on a GPU reuse it),
    under ``runs/deblur-restorer/`` of the working directory like the recipes' run folders."""
    stage = cfg["restorer"]
    if stage.get("weights"):
        return resolve_path(stage["weights"])
    keys = {k: cfg.get(k) for k in ("model", "data", "degradation", "objectives")}
    train = {**cfg["train"], **{k: v for k, v in stage.items() if k != "weights"}}
    keys["train"] = {k: v for k, v in train.items() if k not in RUN_FIELDS}
    keys["model"] = {k: v for k, v in keys["model"].items() if k != "anchor"}
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path("runs") / "deblur-restorer" / f"{digest}.safetensors"


def restorer_run_dir(cfg: dict[str, Any]) -> Path:
    """Stage 1's run folder (checkpoints and log) beside its weights: ``<weights stem>-run/``."""
    path = restorer_path(cfg)
    return path.with_name(f"{path.stem}-run")


def train_restorer(net: nn.Module, cfg: dict[str, Any]) -> None:
    """Stage 1, in place: ``restorer.total_steps`` of the recipe's objective at ω = (0, 0) (L1 to the clean
    image) on the recipe's data and degradation; ``restorer`` entries override the ``train`` section.

    Its checkpoints go to :func:`restorer_run_dir`, and a run stopped during the stage resumes from the last
    one (the folder is named by the stage's config, so whatever is there was made with these settings).
    """
    stage = {k: v for k, v in cfg["restorer"].items() if k != "weights"}
    config = train_config({**cfg, "train": {**cfg["train"], **stage}})
    origin = torch.zeros(1, cfg["p"])
    sampler = FunctionSampler(cfg["p"], fn=lambda b, generator, device: origin.expand(b, -1).to(device))
    model = _IgnoresOmega(net)
    run_dir = restorer_run_dir(cfg)
    trainer = Trainer(model, multi_loss(cfg), sampler, train_loader(cfg), config, run_dir, resume=True)
    if trainer.step:
        print(f"[deblur] stage 1 (restorer) resumed at step {trainer.step} from {run_dir}")
    trainer.fit()
    load_state(model, trainer.inference_weights())


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """The denoiser of ``model.init``, fine-tuned to restore first when ``restorer.total_steps`` > 0 (trained
    once, then read back from :func:`restorer_path`, so resumed and ``--eval-only`` runs do not retrain it)."""
    net = build_denoiser(cfg)
    if int((cfg.get("restorer") or {}).get("total_steps") or 0) <= 0:
        return net
    path = restorer_path(cfg)
    if path.is_file():
        state = load_weights(path)
        expected = net.state_dict()
        if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
            raise ValueError(f"restorer weights {path} do not match model.init's network: delete the file")
        load_state(net, state)
        print(f"[deblur] stage 1 (restorer) read from {path}")
        return net
    train_restorer(net, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(net, path)
    print(f"[deblur] stage 1 (restorer) trained: {path}")
    return net


def build_loss(cfg: dict[str, Any]) -> Any:
    """A single unsharp-mask objective read by both ω entries, with a constant weight (``weight_by: [null]``)."""
    return multi_loss(cfg)


def sweep_options(cfg: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """PSNR_η against the training target of each ω, so every grid point is scored on its own objective
    (the sweep passes clean + the recorded noise as ``degraded``: the blur is never kept)."""
    objective = cfg["objectives"][0]
    gamma, nu = objective.get("gamma", 8.0), objective.get("nu", 0.9)

    def target(clean: Tensor, degraded: Tensor, omega: Tensor) -> Tensor:
        kept = noise_preservation_target(clean, degraded, omega[:, 0], nu)
        return unsharp_mask_target(kept, omega[:, 1], gamma)

    return {"target_fn": target}


RECIPE = Recipe(
    name="deblur",
    task="deblurring",
    summary="Tunable joint noise and blur removal; ω = (noise preservation, unsharp-mask sharpening), "
    f"independent. {CORNERS}.",
    build_model=build_model,
    build_loss=build_loss,
    omega_effects=(
        (
            "noise_preservation",
            "keeps a fraction ω_0·ν of the input noise (0: all noise removed), never the blur",
        ),
        ("sharpening", "unsharp mask ω_1·γ beyond the ground truth (0: as sharp as the clean image)"),
    ),
    sweep_options=sweep_options,
)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
