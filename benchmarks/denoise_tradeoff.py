"""Fidelity vs noise preservation from the real pretrained CDnCNN-B: tunify against DNI (paper Table 1).

    python benchmarks/denoise_tradeoff.py                      # Table 1 at CPU-scale defaults (see README)
    python benchmarks/denoise_tradeoff.py --task noise_blur --patch 48   # Table 3: joint noise + blur, two stages
    python benchmarks/denoise_tradeoff.py --steps 20000 --batch 16 --patch 64 --eval-crop 0 --images 0 --device cuda

From the same start (CDnCNN-B) and with the same budget it fine-tunes on CBSD432 (σ ~ U[5, 30]):
(a) tunify: p = 2, L = ω1·L_rec + ω2·L_np, ω drawn per sample; (b) two fixed networks, one per objective
(ω = (1, 0) and ω = (0, 1)); (c) DNI: the two fixed networks interpolated in weight space
(:func:`tunify.strategies.dni`). It evaluates all of them on Kodak24 and CBSD68 at σ ∈ {5, 15, 30} and
ω1 ∈ {0, .25, .5, .75, 1}, ω2 = 1 − ω1: PSNR to the clean image and PSNR_η to y_η = y + ω2·0.9·(z − y).
``--task noise_blur`` instead trains tunify on joint noise + blur (paper Table 3 setting): a restorer first,
then the other corners around it with the restorer anchored (see :func:`run_noise_blur`). Each task writes
its own files (``denoise_tradeoff.*`` / ``noise_blur_tradeoff.*``); recorded paths are relative to the
repository.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Subset

import tunify
from tunify.data import GaussianNoise, ImageFolderEval, ImageFolderPatches, make_patch_loader
from tunify.data.degradations.chain import blur_noise
from tunify.evaluate import noise_preservation_target, sweep, tuning_strip
from tunify.objectives import (
    PIXEL_DISTANCES,
    FunctionSampler,
    ParametricMultiLoss,
    UnsharpMask,
    build_sampler,
    unsharp_mask_target,
)
from tunify.objectives import noise_preservation_target as kept_noise
from tunify.strategies import dni
from tunify.train import TrainConfig, Trainer, load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "pretrained" / "CDnCNN-B_color_blind" / "cdncnn_b_color_blind.pth"
OMEGA1 = (0.0, 0.25, 0.5, 0.75, 1.0)
DATASETS = ("Kodak24", "CBSD68")
PAPER = {  # Table 1 of Maggioni et al. (CVPR 2023), from ../shared/notes/baselines.md
    "tunify": {
        "Kodak24": {
            "psnr": [26.74, 27.09, 28.46, 35.07, 35.54],
            "psnr_eta": [51.97, 39.04, 35.56, 36.19, 35.54],
        },
        "CBSD68": {
            "psnr": [26.78, 27.12, 28.12, 34.10, 34.53],
            "psnr_eta": [51.36, 38.92, 34.98, 35.55, 34.53],
        },
    },
    "dni": {
        "Kodak24": {
            "psnr": [26.74, 20.69, 18.95, 20.92, 35.56],
            "psnr_eta": [52.21, 21.74, 19.12, 21.00, 35.32],
        },
        "CBSD68": {
            "psnr": [26.78, 20.18, 18.36, 20.18, 34.55],
            "psnr_eta": [51.55, 21.16, 18.53, 20.27, 34.41],
        },
    },
}


PAPER_TABLE3 = {  # Table 3, tunify, PSNR; keyed by the paper's (ω1 = denoising strength, ω2 = sharpening)
    (0.0, 0.0): {"Kodak24": 23.27, "CBSD68": 22.17},
    (0.0, 1.0): {"Kodak24": 18.15, "CBSD68": 17.20},
    (1.0, 0.0): {"Kodak24": 28.05, "CBSD68": 27.13},
    (1.0, 1.0): {"Kodak24": 24.84, "CBSD68": 23.86},
}


def pretrained() -> nn.Module:
    """CDnCNN-B (20 3×3 convs predicting the noise), read by the zoo into spandrel's residual DnCNN."""
    return tunify.zoo.load(WEIGHTS)


def deepened(net: nn.Module, layers: int) -> nn.Module:
    """CDnCNN-B with ``layers`` more 3×3 conv + ReLU pairs in the middle of its stack, each starting as the
    identity (a centred delta per channel; ReLU passes the non-negative features), so the network computes
    exactly what it did while gaining depth and 2 px of receptive field per layer (Net2Net's deeper net)."""
    if not layers:
        return net
    stack = list(net.model)
    middle = len(stack) // 2 // 2 * 2  # after a ReLU
    width = stack[0].out_channels
    extra: list[nn.Module] = []
    for _ in range(layers):
        conv = nn.Conv2d(width, width, 3, padding=1)
        nn.init.dirac_(conv.weight)
        nn.init.zeros_(conv.bias)
        extra += [conv, nn.ReLU(inplace=True)]
    net.model = nn.Sequential(*stack[:middle], *extra, *stack[middle:])
    return net


class FixedOmega(nn.Module):
    """A plain network behind the ``model(x, omega=...)`` protocol (ω ignored), to train and sweep it alike."""

    def __init__(self, net: nn.Module, p: int = 2) -> None:
        super().__init__()
        self.net, self.p = net, p

    def forward(self, x: Tensor, omega: Tensor) -> Tensor:
        return self.net(x)


def constant_sampler(omega: Sequence[float]) -> FunctionSampler:
    row = torch.tensor(omega, dtype=torch.float32)
    return FunctionSampler(len(omega), fn=lambda b, generator, device: row.expand(b, -1).clone())


def make_sampler(args: argparse.Namespace) -> Any:
    kwargs = json.loads(args.sampler_kwargs)
    sampler = build_sampler(args.sampler, p=2, **kwargs)
    return build_sampler("per_batch", p=2, base=sampler) if args.per_batch else sampler


def train(
    model: nn.Module,
    sampler: Any,
    loss_fn: nn.Module,
    degradation: Any,
    args: argparse.Namespace,
    label: str,
    *,
    steps: int | None = None,
    lr: float | None = None,
) -> nn.Module:
    """Fine-tune ``model`` with tunify's Trainer (``steps``/``lr`` default to ``--steps``/``--lr``); returns it
    holding its inference (EMA if any) weights."""
    steps = args.steps if steps is None else steps
    config = TrainConfig(
        total_steps=steps,
        batch_size=args.batch,
        lr=args.lr if lr is None else lr,
        phi_lr_mult=args.phi_lr_mult,
        schedule=args.schedule,
        warmup_steps=args.warmup,
        ema_decay=args.ema,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        progress=args.progress,
        checkpoint_every=10**9,
        log_every=max(1, steps // 10),
    )
    data = ImageFolderPatches(SHARED / "datasets" / "train" / "CBSD432", args.patch, cache=True)
    loader = make_patch_loader(data, degradation, batch_size=args.batch)
    start = time.time()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model, loss_fn, sampler, loader, config, out_dir)
        trainer.fit()
        model.load_state_dict(trainer.inference_weights())
        log = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    losses = [round(r["loss"], 5) for r in log if "loss" in r]
    print(f"[{label}] {config.total_steps} steps in {time.time() - start:.1f}s, loss {losses}", flush=True)
    return model.eval()


def eval_sets(args: argparse.Namespace, degradation: Any, images: int) -> dict[str, Any]:
    crop = args.eval_crop or None
    sets = {}
    for name in DATASETS:
        ds = ImageFolderEval(SHARED / "datasets" / name, degradation, seed=args.seed, crop=crop, cache=True)
        sets[name] = Subset(ds, range(min(images, len(ds)))) if images else ds
    return sets


def evaluate(
    model: nn.Module,
    omegas: Tensor,
    args: argparse.Namespace,
    sigmas: Sequence[float],
    target_fn: Callable[..., Tensor] | dict[str, Callable[..., Tensor]] | None = noise_preservation_target,
    degradations: dict[str, Any] | None = None,
    images: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Mean PSNR / PSNR_η per ω over images, then over the degradation levels, per dataset."""
    degradations = degradations or {f"sigma={s:g}": GaussianNoise(sigma=s) for s in sigmas}
    result: dict[str, dict[str, Any]] = {name: {"per_level": {}} for name in DATASETS}
    model = model.to(args.device)  # the sweep runs where the model is
    with torch.no_grad():
        for level, degradation in degradations.items():
            for name, ds in eval_sets(args, degradation, args.images if images is None else images).items():
                fn = target_fn[level] if isinstance(target_fn, dict) else target_fn
                rows = sweep(model, ds, omegas, max_batch=5, target_fn=fn, progress=False, dataset_name=name)
                result[name]["per_level"][level] = {
                    "psnr": [r["psnr"] for r in rows],
                    "psnr_eta": [r["psnr_eta"] for r in rows],
                    "n_images": rows[0]["n_images"],
                }
    for name in DATASETS:
        levels = list(result[name]["per_level"].values())
        for key in ("psnr", "psnr_eta"):
            result[name][key] = [
                round(sum(v) / len(v), 3) for v in zip(*(lv[key] for lv in levels), strict=True)
            ]
    return result


def line(values: Sequence[float]) -> Tensor:
    return torch.tensor([[w, 1.0 - w] for w in values])


def strip_panels(models: dict[str, tuple[nn.Module, Tensor]], args: argparse.Namespace) -> list:
    """Noisy crop, the outputs at each ω, clean crop: same Kodak crop and noise for every method."""
    item = ImageFolderEval(
        SHARED / "datasets" / "Kodak24", GaussianNoise(sigma=30), seed=args.seed, crop=128
    )[args.strip_image]
    x, clean = item["input"], item["clean"]
    panels = [(x.clamp(0, 1), "noisy σ=30")]
    with torch.no_grad():
        for label, (model, omegas) in models.items():
            for omega in omegas:
                y = model(x[None].to(args.device), omega=omega.to(args.device))[0].cpu()
                panels.append((y, f"{label}\nω=({omega[0]:.2f}, {omega[1]:.2f})"))
    return [*panels, (clean, "clean")]


def run_tradeoff(args: argparse.Namespace) -> dict[str, Any]:
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
    noise = GaussianNoise(sigma=tuple(args.train_sigma))
    methods: dict[str, Any] = {}
    strips: dict[str, dict[str, tuple[nn.Module, Tensor]]] = {}
    omegas = line(OMEGA1)
    ref = evaluate(FixedOmega(pretrained()), omegas[-1:], args, args.sigmas)
    reference = {n: {"psnr": ref[n]["psnr"][0], "psnr_eta": ref[n]["psnr_eta"][0]} for n in DATASETS}
    print(f"[pretrained] {json.dumps(reference)}", flush=True)
    if "tunify" in args.methods:
        tmodel = tunify.convert(pretrained(), p=2)
        if args.anchor:
            tunify.anchor(tmodel, 0)  # ω = (1, 0) stays the pretrained (fidelity) network
        tmodel = train(tmodel, make_sampler(args), loss_fn, noise, args, "tunify")
        methods["tunify"] = evaluate(tmodel, omegas, args, args.sigmas)
        strips["tunify"] = {"tunify": (tmodel, omegas)}
        print(f"[tunify] {json.dumps({n: methods['tunify'][n]['psnr'] for n in DATASETS})}", flush=True)
    if "fixed" in args.methods or "dni" in args.methods:
        fixed = {}
        for end, omega in (("fidelity", (1.0, 0.0)), ("noise", (0.0, 1.0))):
            if end == "noise" and "dni" not in args.methods and not args.fixed_noise:
                continue
            lr = args.fidelity_lr if end == "fidelity" else args.lr
            net = train(
                FixedOmega(pretrained()), constant_sampler(omega), loss_fn, noise, args, f"fixed-{end}", lr=lr
            )
            fixed[end] = (net, torch.tensor([omega]))
        fid = evaluate(fixed["fidelity"][0], fixed["fidelity"][1], args, args.sigmas)
        nse = evaluate(fixed["noise"][0], fixed["noise"][1], args, args.sigmas) if "noise" in fixed else None
        methods["fixed"] = {
            n: {
                key: [nse[n][key][0] if nse else None, None, None, None, fid[n][key][0]]
                for key in ("psnr", "psnr_eta")
            }
            for n in DATASETS
        }
        strips["fixed"] = {f"fixed {e}": fixed[e] for e in fixed}
        if "dni" in args.methods:
            interp = dni([fixed["fidelity"][0].net, fixed["noise"][0].net]).eval()
            methods["dni"] = evaluate(interp, omegas, args, args.sigmas)
            strips["dni"] = {"dni": (interp, omegas)}
    return {"methods": methods, "reference": {"pretrained": reference}, "strips": strips}


NOISE_BLUR_OMEGAS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5))


def noise_blur_loss(gamma: float, distance: str = "l1") -> ParametricMultiLoss:
    """One ω-dependent target: keep ω1·ν of the added noise (not the blur), sharpen by ω2·γ beyond it."""
    objective = UnsharpMask(gamma=gamma, omega_index=1, noise_omega_index=0, distance=distance)
    return ParametricMultiLoss([objective], num_params=2, weight_by=[None])


def run_noise_blur(args: argparse.Namespace) -> dict[str, Any]:
    """Tunify on joint noise + blur (paper Table 3 setting): ω1 = noise kept (0: remove all), ω2 = sharpening
    beyond the clean image. Staged: (1) the plain CDnCNN-B fine-tuned to restore (ω = (0, 0), L1 to the clean
    image) for ``--noise-blur-stage1-steps``; (2) converted with a base copy (``independent=True``), the base
    copy and φ anchored so ω = (0, 0) stays the stage-1 network, and the other copies trained on the joint
    target for ``--noise-blur-steps``."""
    loss_fn = noise_blur_loss(args.gamma, args.noise_blur_distance)
    degradation = blur_noise(
        rho=tuple(args.noise_blur_train_rho),
        sigma=tuple(args.train_sigma),
        sharp_prob=args.noise_blur_sharp_prob,
    )
    omegas = torch.tensor(NOISE_BLUR_OMEGAS)
    names = {(r, s): f"rho={r:g},sigma={s:g}" for r in args.noise_blur_rhos for s in args.sigmas}
    levels = {name: blur_noise(rho=r, sigma=s) for (r, s), name in names.items()}
    n = args.noise_blur_images

    per_level: dict[str, dict[str, dict[str, float]]] = {}

    def reference(label: str, net: nn.Module) -> dict[str, float]:
        ref = evaluate(FixedOmega(net), omegas[:1], args, args.sigmas, None, levels, images=n)
        per_level[label] = {
            name: {lv: v["psnr"][0] for lv, v in ref[name]["per_level"].items()} for name in DATASETS
        }
        return {name: ref[name]["psnr"][0] for name in DATASETS}

    references = {
        "input": reference("input", nn.Identity()),
        "pretrained": reference("pretrained", pretrained()),
    }
    net = deepened(pretrained(), args.noise_blur_deepen)
    if args.noise_blur_stage1_init is not None:
        net.load_state_dict(load_weights(args.noise_blur_stage1_init))  # continue an earlier stage 1
    saved = args.noise_blur_stage1_weights
    if args.noise_blur_stage1_steps and saved is not None and saved.is_file():
        net.load_state_dict(load_weights(saved))  # stage 1 of an earlier run with these settings
        print(f"[noise_blur] stage 1 read from {recorded(saved)}", flush=True)
    elif args.noise_blur_stage1_steps:
        restorer = FixedOmega(net)
        net = train(
            restorer,
            constant_sampler((0.0, 0.0)),
            loss_fn,
            degradation,
            args,
            "noise_blur-stage1",
            steps=args.noise_blur_stage1_steps,
            lr=args.noise_blur_stage1_lr,
        ).net
        if saved is not None:
            save_weights(net, saved)
    if args.noise_blur_stage1_steps:
        references["stage1"] = reference("stage1", net)
        print(f"[noise_blur] mean PSNR {json.dumps(references)}", flush=True)
    tmodel = tunify.convert(net, p=2, independent=True)
    if args.noise_blur_stage1_steps and args.anchor:
        tunify.anchor(tmodel, 2)  # the base copy: ω = (0, 0) stays the stage-1 restorer
    sampler_kwargs = json.loads(args.noise_blur_sampler_kwargs)
    model = train(
        tmodel,
        build_sampler(args.noise_blur_sampler, p=2, **sampler_kwargs),
        loss_fn,
        degradation,
        args,
        "noise_blur",
        steps=args.noise_blur_steps,
        lr=args.noise_blur_lr,
    )

    def target(clean: Tensor, degraded: Tensor, omega: Tensor) -> Tensor:
        """The training target: keep ω1·ν of the added noise (``degraded`` is clean + that noise in a sweep,
        not the blurred input), then sharpen by ω2·γ."""
        return unsharp_mask_target(kept_noise(clean, degraded, omega[:, 0], 0.9), omega[:, 1], args.gamma)

    grid = evaluate(model, omegas, args, args.sigmas, target_fn=target, degradations=levels, images=n)
    grid_image(model, args)
    return {
        "omegas": omegas.tolist(),
        "tunify": grid,
        "reference_psnr": references,
        "reference_psnr_per_level": per_level,
    }


def grid_image(model: nn.Module, args: argparse.Namespace) -> None:
    """3×3 outputs over (ω1, ω2) ∈ {0, ½, 1}² on one Kodak crop at ρ = 2, σ = 15 (the paper's Figure 5),
    then the degraded input and the clean crop."""
    item = ImageFolderEval(
        SHARED / "datasets" / "Kodak24", blur_noise(rho=2.0, sigma=15.0), seed=args.seed, crop=128
    )[args.strip_image]
    x = item["input"]
    panels = []
    with torch.no_grad():
        for w1 in (0.0, 0.5, 1.0):
            for w2 in (0.0, 0.5, 1.0):
                y = model(x[None].to(args.device), omega=torch.tensor([w1, w2], device=args.device))[0].cpu()
                panels.append((y, f"ω=({w1:g}, {w2:g})\nnoise kept {w1:g}, sharpen {w2:g}"))
    panels += [(x.clamp(0, 1), "input ρ=2, σ=15"), (item["clean"], "clean")]
    tuning_strip(panels, args.out / f"{args.name}_grid.png", max_cols=3)


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def markdown(results: dict[str, Any]) -> str:
    head = "| Metric | Method | " + " | ".join(f"Kodak {w:.2f}" for w in OMEGA1) + " | "
    head += " | ".join(f"CBSD68 {w:.2f}" for w in OMEGA1) + " |"
    lines = [head, "|---|---|" + "---:|" * 10]
    for key, title in (("psnr", "PSNR"), ("psnr_eta", "PSNR_η")):
        for method, res in results["methods"].items():
            cells = [fmt(v) for n in DATASETS for v in res[n][key]]
            lines.append(f"| {title} | {method} (ours) | " + " | ".join(cells) + " |")
        for method, res in PAPER.items():
            cells = [fmt(v) for n in DATASETS for v in res[n][key]]
            lines.append(f"| {title} | {method} (paper) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def noise_blur_markdown(nb: dict[str, Any]) -> str:
    """Each ω with what it asks for, PSNR to the clean image and to its own target, the paper's PSNR at the
    same corner (the paper's ω1 is denoising strength: its (1 − ω1, ω2) is our (ω1, ω2)); then references."""
    head = (
        "| ω (ours) | asks for | PSNR Kodak24 | PSNR CBSD68 | to own target Kodak24 | to own target CBSD68 "
    )
    head += "| paper ω | paper PSNR Kodak24 | paper PSNR CBSD68 |"
    lines = [head, "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for i, (w1, w2) in enumerate(nb["omegas"]):
        asks = f"{'all noise removed' if w1 == 0 else f'{w1:g}·ν of the noise kept'}, "
        asks += "as sharp as clean" if w2 == 0 else f"sharpened by {w2:g}·γ"
        cells = [fmt(nb["tunify"][n][key][i]) for key in ("psnr", "psnr_eta") for n in DATASETS]
        paper_omega = (1 - w1, w2)
        paper = PAPER_TABLE3.get(paper_omega, {})
        cells += [f"({paper_omega[0]:g}, {paper_omega[1]:g})", *(fmt(paper.get(n)) for n in DATASETS)]
        lines.append(f"| ({w1:g}, {w2:g}) | {asks} | " + " | ".join(cells) + " |")
    lines += ["", "| reference (no ω) | PSNR Kodak24 | PSNR CBSD68 |", "|---|---:|---:|"]
    titles = {
        "input": "degraded input",
        "pretrained": "pretrained CDnCNN-B",
        "stage1": "stage 1: CDnCNN-B fine-tuned to restore (= ω (0, 0))",
    }
    for label, values in nb["reference_psnr"].items():
        lines.append(f"| {titles[label]} | " + " | ".join(fmt(values[n]) for n in DATASETS) + " |")
    pretrained_levels = nb.get("reference_psnr_per_level", {}).get("pretrained")
    if pretrained_levels:
        lines += ["", "| level | " + " | ".join(f"ω (0, 0) − pretrained, {n}" for n in DATASETS) + " |"]
        lines.append("|---|" + "---:|" * len(DATASETS))
        for level in pretrained_levels[DATASETS[0]]:
            gains = [
                nb["tunify"][n]["per_level"][level]["psnr"][0] - pretrained_levels[n][level] for n in DATASETS
            ]
            lines.append(f"| {level} | " + " | ".join(f"{g:+.2f}" for g in gains) + " |")
    return "\n".join(lines) + "\n"


def noise_blur_plot(nb: dict[str, Any], path: Path) -> None:
    """PSNR at each corner against the paper's (Table 3), with the pretrained network and stage 1 as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corners = [tuple(w) for w in nb["omegas"] if tuple(w) != (0.5, 0.5)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, name in zip(axes, DATASETS, strict=True):
        ours = [nb["tunify"][name]["psnr"][nb["omegas"].index(list(c))] for c in corners]
        paper = [PAPER_TABLE3[(1 - c[0], c[1])][name] for c in corners]
        xs = range(len(corners))
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="tunify (this run)")
        ax.bar([x + 0.2 for x in xs], paper, 0.4, label="paper, Table 3")
        for label, style in (("pretrained", "--"), ("stage1", ":")):
            if label in nb["reference_psnr"]:
                ax.axhline(nb["reference_psnr"][label][name], ls=style, c="k", label=label)
        ax.set_xticks(list(xs), [f"ω=({c[0]:g}, {c[1]:g})" for c in corners])
        ax.set(ylabel="PSNR to the clean image (dB)", title=f"{name}: noise + blur corners", ylim=(15, None))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(results: dict[str, Any], path: Path) -> None:
    """PSNR and PSNR_η against ω1, one line per method, one row per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for row, name in enumerate(DATASETS):
        for col, (key, title) in enumerate((("psnr", "PSNR"), ("psnr_eta", "PSNR_η"))):
            ax = axes[row][col]
            for method, res in results["methods"].items():
                pts = [(w, v) for w, v in zip(OMEGA1, res[name][key], strict=True) if v is not None]
                ax.plot(*zip(*pts, strict=True), "o-" if method != "fixed" else "s", label=method)
            ax.set(xlabel="ω1 (ω2 = 1 − ω1)", ylabel=f"{title} (dB)", title=f"{name}: {title}")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--task",
        choices=("tradeoff", "noise_blur"),
        default="tradeoff",
        help="tradeoff: fidelity vs noise preservation (Table 1); noise_blur: joint noise + blur (Table 3)",
    )
    p.add_argument("--steps", type=int, default=400, help="optimiser steps per trained network")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=40, help="training patch side")
    p.add_argument("--lr", type=float, default=1e-4, help="lr of tunify and of the fixed noise network")
    p.add_argument(
        "--fidelity-lr",
        type=float,
        default=TrainConfig.lr,
        help="lr of the fixed fidelity network (fine-tuning the objective CDnCNN-B was trained for)",
    )
    p.add_argument("--phi-lr-mult", type=float, default=TrainConfig.phi_lr_mult)
    p.add_argument("--schedule", default=TrainConfig.schedule)
    p.add_argument("--warmup", type=int, default=20, help="linear LR warm-up steps")
    p.add_argument("--ema", type=float, default=TrainConfig.ema_decay, help="EMA decay (default: none)")
    p.add_argument(
        "--sampler", default="vertex_mix", help="tunify's ω sampler (tunify.objectives.sampler_names)"
    )
    p.add_argument(
        "--sampler-kwargs",
        default='{"vertex_prob": 0.5, "vertex_weights": [0, 1]}',
        help="JSON kwargs of the sampler",
    )
    p.add_argument("--per-batch", action="store_true", help="one ω per batch instead of per sample")
    p.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="do not anchor (tradeoff: the fidelity copy and φ stay pretrained; noise_blur: the base copy "
        "and φ stay the stage-1 restorer)",
    )
    p.add_argument("--train-sigma", type=float, nargs=2, default=(5.0, 30.0))
    p.add_argument("--sigmas", type=float, nargs="+", default=[5.0, 15.0, 30.0], help="evaluation σ")
    p.add_argument("--eval-crop", type=int, default=128, help="center crop side for evaluation (0: full)")
    p.add_argument("--images", type=int, default=0, help="first N images per dataset (0: all)")
    p.add_argument("--methods", nargs="+", default=["tunify", "dni", "fixed"])
    p.add_argument("--fixed-noise", action="store_true", help="train the noise network even without dni")
    p.add_argument(
        "--noise-blur-stage1-steps",
        type=int,
        default=2400,
        help="steps of the plain restorer (0: no stage 1)",
    )
    p.add_argument("--noise-blur-stage1-lr", type=float, default=1e-4, help="its lr")
    p.add_argument(
        "--noise-blur-deepen",
        type=int,
        default=0,
        help="identity-initialised conv layers added to the middle of the restorer before stage 1 (a larger "
        "restorer that starts as CDnCNN-B)",
    )
    p.add_argument(
        "--noise-blur-stage1-init",
        type=Path,
        help="safetensors file stage 1 starts from instead of CDnCNN-B (an earlier stage 1, trained further)",
    )
    p.add_argument(
        "--noise-blur-stage1-weights",
        type=Path,
        help="safetensors file: stage 1 is saved there, and read instead of trained when it exists (to rerun "
        "stage 2 or the evaluation; the caller keeps the file in step with the stage-1 options)",
    )
    p.add_argument("--noise-blur-steps", type=int, default=300, help="steps of the tunable stage")
    p.add_argument("--noise-blur-lr", type=float, default=1e-4, help="its lr")
    p.add_argument("--noise-blur-sampler", default="corner_biased", help="ω sampler of the tunable stage")
    p.add_argument(
        "--noise-blur-sampler-kwargs",
        default='{"corner_prob": 0.5, "simplex_prob": 0.0}',
        help="JSON kwargs of that sampler",
    )
    p.add_argument("--gamma", type=float, default=1.0, help="unsharp-mask strength γ at ω2 = 1")
    p.add_argument(
        "--noise-blur-distance",
        choices=sorted(PIXEL_DISTANCES),
        default="l1",
        help="distance of both stages' objective to its target (psnr: log MSE, each sample weighed alike)",
    )
    p.add_argument(
        "--noise-blur-sharp-prob",
        type=float,
        default=1 / 3,
        help="fraction of training samples left unblurred (ρ = 0) in both stages",
    )
    p.add_argument(
        "--noise-blur-train-rho",
        type=float,
        nargs=2,
        default=(0.0, 4.0),
        help="range of the training blur's ρ (drawn uniformly, besides the unblurred share)",
    )
    p.add_argument("--noise-blur-rhos", type=float, nargs="+", default=[0.0, 2.0, 4.0], help="evaluation ρ")
    p.add_argument("--noise-blur-images", type=int, default=8, help="first N images per dataset (0: all)")
    p.add_argument("--strip-image", type=int, default=22, help="Kodak index of the tuning-strip crop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="a progress bar per training run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="training precision (TrainConfig.precision)")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output folder")
    p.add_argument(
        "--name", help="stem of the output files (default: denoise_tradeoff / noise_blur_tradeoff)"
    )
    args = p.parse_args(argv)
    args.name = args.name or {"tradeoff": "denoise_tradeoff", "noise_blur": "noise_blur_tradeoff"}[args.task]
    return args


def recorded(value: Any) -> Any:
    """A config value as the results file records it: paths relative to the repository root."""
    return os.path.relpath(Path(value).resolve(), ROOT) if isinstance(value, Path) else value


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # fixed training shapes: let cuDNN pick its fastest kernels
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    config = {k: recorded(v) for k, v in vars(args).items()}
    stem = args.out / args.name
    if args.task == "noise_blur":
        out: dict[str, Any] = {"config": config, "noise_blur": run_noise_blur(args)}
        md = noise_blur_markdown(out["noise_blur"])
        noise_blur_plot(out["noise_blur"], stem.with_name(f"{args.name}_psnr.png"))
    else:
        results = run_tradeoff(args)
        strips = results.pop("strips")
        out = {"config": config, **results}
        md = markdown(out)
        plot(out, stem.with_name(f"{args.name}_psnr.png"))
        for method, models in strips.items():
            tuning_strip(
                strip_panels(models, args), stem.with_name(f"{args.name}_strip_{method}.png"), max_cols=7
            )
    out["seconds"] = round(time.time() - start)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    stem.with_suffix(".md").write_text(md)
    print(md, flush=True)
    print(f"done in {out['seconds']}s -> {recorded(stem)}.json", flush=True)


if __name__ == "__main__":
    main()
