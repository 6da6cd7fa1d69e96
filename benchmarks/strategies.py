"""Control strategies side by side: kernels, low-rank, filter atoms, AdaFM, FTN, DNI and two fixed networks.

    python benchmarks/strategies.py                      # CPU-scale defaults (see README)
    python benchmarks/strategies.py --steps 20000 --batch 16 --patch 64 --eval-crop 0 --device cuda

Everything but the strategy comes from ``benchmarks/denoise_tradeoff.py`` (imported, not copied): the
pretrained CDnCNN-B, CBSD432 patches with σ ~ U[5, 30], the loss ω1·L_rec + ω2·L_np, the ω sampler, the
optimiser and budget (``--steps`` per trained network), the anchor, and the evaluation (Kodak24 and CBSD68,
σ ∈ {5, 15, 30}, ω1 ∈ {0, .25, .5, .75, 1}, ω2 = 1 − ω1, PSNR and PSNR_η); all of its flags are accepted.
Methods:

- ``kernels``, ``lowrank_r4``, ``lowrank_r8``, ``atoms``, ``adafm``, ``ftn``: ``tunify.convert(net, 2,
  strategy=...)``, anchored at ω = (1, 0) like denoise_tradeoff's tunify run, trained by the parametric
  multi-loss with ω drawn per sample;
- ``fixed``: one network per end (ω = (1, 0) and (0, 1)), fine-tuned from CDnCNN-B with the same budget;
- ``dni``: the two fixed networks interpolated in weight space;
- ``adafm_two_stage``, ``ftn_two_stage``: the papers' protocol. Stage A (train the plain network at level A,
  ω = (1, 0)) is exactly the fixed fidelity network's training, so its result is reused; stage B trains only
  the added modules at ω = (0, 1) (:func:`tunify.train.training_stage`) with the same budget.

It writes ``<out>/strategies.json``, ``strategies.md`` (the table) and ``strategies_psnr.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's tunify, and denoise_tradeoff beside this file
import denoise_tradeoff as dt  # noqa: E402 (the shared machinery, importable from this folder)

import tunify  # noqa: E402
from tunify.data import GaussianNoise  # noqa: E402
from tunify.objectives import ParametricMultiLoss  # noqa: E402
from tunify.strategies import dni  # noqa: E402
from tunify.train import training_stage  # noqa: E402

METHODS = (
    "kernels",
    "lowrank_r4",
    "lowrank_r8",
    "atoms",
    "adafm",
    "adafm_two_stage",
    "ftn",
    "ftn_two_stage",
    "dni",
    "fixed",
)
CLAIM_METHODS = ("lowrank_r4", "lowrank_r8", "atoms")  # the parameter-efficient strategies of the claim


def strategy_of(method: str, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``tunify.convert``'s strategy name and options for a method."""
    if method.startswith("lowrank_r"):
        return "lowrank", {"rank": int(method.removeprefix("lowrank_r"))}
    if method == "atoms":
        return "atoms", {"atoms": args.atoms, "overcomplete": args.overcomplete, "rank": args.atoms_rank}
    if method.startswith("adafm"):
        return "adafm", {"kernel_size": args.adafm_kernel}
    if method.startswith("ftn"):
        return "ftn", {"groups": args.ftn_groups}
    return "kernels", {}


def params(net: nn.Module) -> int:
    return sum(t.numel() for t in net.state_dict().values())


def step_seconds(model: nn.Module, omega_fn: Callable[[int], Tensor], args: argparse.Namespace) -> float:
    """Seconds of one training step's forward + backward at the benchmark's batch and patch size."""
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 3, args.patch, args.patch, generator=gen)
    omega = omega_fn(args.batch)
    model.train()
    start = time.perf_counter()
    for _ in range(args.timing_steps):
        out = model(x, omega=omega)
        out.square().mean().backward()
    seconds = (time.perf_counter() - start) / args.timing_steps
    model.zero_grad(set_to_none=True)
    model.eval()
    return seconds


def time_steps(models: dict[str, nn.Module], args: argparse.Namespace) -> dict[str, float]:
    """Training step time of each model over the plain network's, measured in alternation (the CPU is
    shared: ``--timing-rounds`` rounds over all models, the median ratio per model)."""
    plain = dt.FixedOmega(dt.pretrained())
    sampler = dt.make_sampler(args)
    gen = torch.Generator().manual_seed(args.seed)
    omega_fn = lambda b: sampler(b, gen)  # noqa: E731
    ratios: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.timing_rounds):
        base = step_seconds(plain, omega_fn, args)
        for name, model in models.items():
            ratios[name].append(step_seconds(model, omega_fn, args) / base)
    return {name: round(statistics.median(r), 3) for name, r in ratios.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
    noise = GaussianNoise(sigma=tuple(args.train_sigma))
    omegas = dt.line(dt.OMEGA1)
    base_params = params(dt.pretrained())
    methods: dict[str, dict[str, Any]] = {}
    trained: dict[str, nn.Module] = {}

    def record(name: str, model: nn.Module, added: int, result: dict[str, Any]) -> None:
        methods[name] = {"params_base": base_params, "params_added": added}
        methods[name].update({n: {k: result[n][k] for k in ("psnr", "psnr_eta")} for n in dt.DATASETS})
        trained[name] = model
        summary = {n: methods[name][n]["psnr"] for n in dt.DATASETS}
        print(f"[{name}] params_added={added:,} {json.dumps(summary)}", flush=True)

    for name in args.methods:
        if name in ("fixed", "dni") or name.endswith("_two_stage"):
            continue
        strategy, options = strategy_of(name, args)
        tmodel = tunify.convert(dt.pretrained(), p=2, strategy=strategy, **options)
        if args.anchor:
            tunify.anchor(tmodel, 0)  # ω = (1, 0) stays the pretrained (fidelity) network
        lr = args.lr * (args.delta_lr_mult if strategy != "kernels" else 1.0)
        tmodel = dt.train(tmodel, dt.make_sampler(args), loss_fn, noise, args, name, lr=lr)
        added = tmodel.conversion_report().params_added
        record(name, tmodel, added, dt.evaluate(tmodel, omegas, args, args.sigmas))

    two_stage = [m for m in args.methods if m.endswith("_two_stage")]
    if "fixed" in args.methods or "dni" in args.methods or two_stage:
        fixed = {}
        for end, omega in (("fidelity", (1.0, 0.0)), ("noise", (0.0, 1.0))):
            if end == "noise" and not {"fixed", "dni"} & set(args.methods):
                continue
            sampler = dt.constant_sampler(omega)
            fixed[end] = dt.train(
                dt.FixedOmega(dt.pretrained()), sampler, loss_fn, noise, args, f"fixed-{end}"
            )
        if "fixed" in args.methods:
            ends = {
                e: dt.evaluate(fixed[e], torch.tensor([o]), args, args.sigmas)
                for e, o in (("fidelity", (1.0, 0.0)), ("noise", (0.0, 1.0)))
            }
            result = {
                n: {
                    k: [ends["noise"][n][k][0], None, None, None, ends["fidelity"][n][k][0]]
                    for k in ("psnr", "psnr_eta")
                }
                for n in dt.DATASETS
            }
            record("fixed", fixed["fidelity"], base_params, result)  # a second full network
        if "dni" in args.methods:
            interp = dni([fixed["fidelity"].net, fixed["noise"].net]).eval()
            record(
                "dni",
                interp,
                interp.conversion_report().params_added,
                dt.evaluate(interp, omegas, args, args.sigmas),
            )
        for name in two_stage:
            strategy, options = strategy_of(name, args)
            # stage A (the plain network trained at ω = (1, 0)) is the fixed fidelity network's training
            tmodel = tunify.convert(copy.deepcopy(fixed["fidelity"].net), p=2, strategy=strategy, **options)
            with training_stage(tmodel, "b", 1):
                sampler = dt.constant_sampler((0.0, 1.0))
                tmodel = dt.train(
                    tmodel, sampler, loss_fn, noise, args, name, lr=args.lr * args.delta_lr_mult
                )
            added = tmodel.conversion_report().params_added
            record(name, tmodel, added, dt.evaluate(tmodel, omegas, args, args.sigmas))

    timed = {n: m for n, m in trained.items() if n != "fixed"}
    ratios = time_steps(timed, args) if args.timing_rounds else {}
    for name in methods:
        methods[name]["train_step_ratio"] = 1.0 if name == "fixed" else ratios.get(name)
    ordered = {name: methods[name] for name in METHODS if name in methods}
    return {"methods": ordered, "claim": claim(ordered)}


def claim(methods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's claim per parameter-efficient strategy: at most 10 % of kernels' added parameters and
    within 0.2 dB of kernels in PSNR and PSNR_η at every ω on both sets (worst gap reported)."""
    if "kernels" not in methods:
        return {}
    ref = methods["kernels"]
    out = {}
    for name in CLAIM_METHODS:
        if name not in methods:
            continue
        res = methods[name]
        gaps = [
            ref[n][k][i] - res[n][k][i] for n in dt.DATASETS for k in ("psnr", "psnr_eta") for i in range(5)
        ]
        share = res["params_added"] / ref["params_added"]
        worst = round(max(gaps), 3)
        out[name] = {
            "params_share": round(share, 4),
            "worst_gap_db": worst,
            "holds": share <= 0.10 and worst <= 0.2,
        }
    return out


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def markdown(results: dict[str, Any]) -> str:
    head = "| Metric | Method | params added | step × | "
    head += " | ".join(f"Kodak {w:.2f}" for w in dt.OMEGA1) + " | "
    head += " | ".join(f"CBSD68 {w:.2f}" for w in dt.OMEGA1) + " |"
    lines = [head, "|---|---|---:|---:|" + "---:|" * 10]
    for key, title in (("psnr", "PSNR"), ("psnr_eta", "PSNR_η")):
        for method, res in results["methods"].items():
            cells = [fmt(v) for n in dt.DATASETS for v in res[n][key]]
            ratio = res.get("train_step_ratio")
            lines.append(
                f"| {title} | {method} | {res['params_added']:,} | {fmt(ratio)} | " + " | ".join(cells) + " |"
            )
    if results.get("claim"):
        lines += [
            "",
            "| Claim (≤ 10 % of kernels' added params, ≤ 0.2 dB below kernels everywhere) | share | "
            "worst gap (dB) | holds |",
            "|---|---:|---:|---|",
        ]
        for name, c in results["claim"].items():
            lines.append(f"| {name} | {c['params_share']:.1%} | {c['worst_gap_db']:.2f} | {c['holds']} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """This benchmark's flags; every other flag goes to denoise_tradeoff's parser (steps, batch, patch, lr,
    sampler, anchor, evaluation sizes, seed, threads, device, out)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--atoms", type=int, default=None, help="atoms per kernel (default k², exact)")
    p.add_argument("--overcomplete", type=int, default=0, help="sub-atoms per atom (0: off)")
    p.add_argument("--atoms-rank", type=int, default=4, help="rank of atoms' low-rank fallback (1×1, Linear)")
    p.add_argument("--adafm-kernel", type=int, default=1, help="AdaFM depthwise filter size")
    p.add_argument("--ftn-groups", type=int, default=16, help="FTN 1×1 convolution groups")
    p.add_argument(
        "--delta-lr-mult",
        type=float,
        default=1.0,
        help="lr multiplier for the strategies that learn deltas from zero (all but kernels, dni, fixed)",
    )
    p.add_argument("--timing-steps", type=int, default=3, help="forward+backward passes per timing")
    p.add_argument("--timing-rounds", type=int, default=3, help="alternating timing rounds (0: skip)")
    p.add_argument("-h", "--help", action="store_true")
    own, rest = p.parse_known_args(argv)
    if own.help:
        p.print_help()
        print("\nand every flag of benchmarks/denoise_tradeoff.py:")
        dt.parse_args(["--help"])
    shared = dt.parse_args(["--name", "strategies", *rest])
    return argparse.Namespace(**{**vars(shared), **vars(own)})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    results = run(args)
    skip = {
        "help",
        "noise_blur_steps",
        "noise_blur_lr",
        "noise_blur_rhos",
        "noise_blur_images",
        "strip_image",
        "fixed_noise",
    }
    config = {k: dt.recorded(v) for k, v in vars(args).items() if k not in skip}
    out: dict[str, Any] = {"config": config, **results, "seconds": round(time.time() - start)}
    stem = args.out / args.name
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    md = markdown(out)
    stem.with_suffix(".md").write_text(md)
    dt.plot(out, stem.with_name(f"{args.name}_psnr.png"))
    print(md, flush=True)
    print(f"done in {out['seconds']}s -> {dt.recorded(stem)}.json", flush=True)


if __name__ == "__main__":
    main()
