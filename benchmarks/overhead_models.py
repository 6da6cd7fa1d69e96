"""Cost of whole converted networks (SwinIR, NAFNet; p = 2) against the originals, measured side by side.

    python benchmarks/overhead_models.py                       # CPU, small configs (README table)
    python benchmarks/overhead_models.py --device cuda --size 128 --batch 8 --full
    python benchmarks/overhead_models.py --compile --out benchmarks/results/overhead_models_compiled.json

Five comparisons per network, each timed in alternating rounds so both sides see the same machine state
(the ratio is the median over rounds of tunable / plain): a forward at one ω shared by the batch, a forward
with an ω map (one ω per pixel), a training step (forward, L1 loss, backward) at per-sample ω, the same step
with copy 0 and φ frozen by :func:`tunify.anchor` (how the recipes train), and the network baked at a fixed
ω (:func:`tunify.bake`) against the original. A first row times the original
against itself: the noise of the measurement; each row also keeps the first and third quartiles of the
per-round ratios (``ratio_quartiles``), the range the middle half of the rounds fell in.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from overhead import compare  # the sibling script's interleaved timer
from torch import nn

import tunify
from tunify import zoo

SMALL = {  # CPU-sized variants of the registered configurations
    "swinir_lightweight_x2": dict(depths=[2, 2], num_heads=[6, 6]),
    "nafnet_sidd_w32": dict(width=16, enc_blk_nums=[1, 1, 1, 1], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1]),
}


def train_step(model: nn.Module, x: torch.Tensor, omega: torch.Tensor | None) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        y = model(x) if omega is None else model(x, omega=omega)
        y.abs().mean().backward()

    return run


def forward(model: nn.Module, x: torch.Tensor, omega: torch.Tensor | None) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x) if omega is None else model(x, omega=omega)

    return run


def measure(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    plain = zoo.create(name, **overrides).to(args.device)
    tmodel = tunify.convert(copy.deepcopy(plain), 2, **zoo.default_tunable_targets(plain))
    scale = getattr(plain, "upscale", 1)
    size = args.size // scale if scale > 1 else args.size
    x = torch.rand(args.batch, 3, size, size, device=args.device)
    shared = torch.tensor([0.3, 0.7], device=args.device)
    per_sample = torch.rand(args.batch, 2, device=args.device)
    omega_map = torch.rand(args.batch, 2, *x.shape[2:], device=args.device)
    plain.eval(), tmodel.eval()
    baked = tunify.bake(tmodel, shared.cpu()).to(args.device).eval()
    anchored = tunify.anchor(copy.deepcopy(tmodel), 0)  # as the recipes train: copy 0 and φ frozen
    if args.compile:  # every side compiled alike (the warm-up rounds compile each mode)
        plain, tmodel, baked, anchored = (torch.compile(m) for m in (plain, tmodel, baked, anchored))
    cases = [
        ("noise floor: plain vs plain", forward(plain, x, None), forward(plain, x, None)),
        ("forward, shared ω", forward(plain, x, None), forward(tmodel, x, shared)),
        ("forward, ω map", forward(plain, x, None), forward(tmodel, x, omega_map)),
        ("train step, per-sample ω", train_step(plain, x, None), train_step(tmodel, x, per_sample)),
        ("train step, anchored", train_step(plain, x, None), train_step(anchored, x, per_sample)),
        ("baked forward", forward(plain, x, None), forward(baked, x, None)),
    ]
    params = sum(p.numel() for p in plain.parameters())
    rows = []
    for case, plain_fn, tunable_fn in cases:
        plain_s, tunable_s, ratio, quartiles = compare(
            plain_fn, tunable_fn, args.device, args.rounds, repeats=1
        )
        row = dict(
            model=name,
            overrides=overrides,
            params=params,
            params_tunable=sum(p.numel() for p in tmodel.parameters()),
            input=list(x.shape),
            case=case,
            plain_ms=round(1e3 * plain_s, 2),
            tunable_ms=round(1e3 * tunable_s, 2),
            ratio=round(ratio, 3),
            ratio_quartiles=[round(q, 3) for q in quartiles],
        )
        rows.append(row)
        print(
            f"{name:>22} {case:>26} {row['plain_ms']:>9.1f} {row['tunable_ms']:>10.1f} {row['ratio']:>6.2f}"
            f"  ({quartiles[0]:.2f}–{quartiles[1]:.2f})",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64, help="output side (SR input is size / scale)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="the registered configurations, not reduced")
    parser.add_argument("--compile", action="store_true", help="torch.compile every network (inductor)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "overhead_models.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{'model':>22} {'case':>26} {'plain ms':>9} {'tunable ms':>10} {'ratio':>6}  (middle half of rounds)"
    )
    rows = []
    for name, overrides in SMALL.items():
        rows += measure(name, {} if args.full else overrides, args)
    meta = dict(
        device=args.device,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        size=args.size,
        batch=args.batch,
        rounds=args.rounds,
        compile=args.compile,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
