"""Cost of a tunable convolution against ``nn.Conv2d``, measured side by side in one run.

    python benchmarks/overhead.py            # CPU, the README's table
    python benchmarks/overhead.py --device cuda --repeats 50

Cases: ω shared by the batch, one ω per sample, and an ω map (one ω per pixel, p ≤ 4; its row also gives
the ratio to the shared-ω layer). Each case times the plain layer and the tunable one in alternating rounds,
so both see the same machine state; the printed figure is the median over rounds of tunable / plain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

import tunify
from tunify.layers import factory_for, use_omega


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


class Timing(NamedTuple):
    plain: float  # median seconds per call
    tunable: float
    ratio: float  # median over rounds of tunable / plain within the round
    quartiles: tuple[float, float]  # first and third quartile of those ratios: how far one figure moves


def compare(plain_fn, tunable_fn, device: str, rounds: int, repeats: int) -> Timing:
    """Both functions timed in alternating rounds; the ratio is taken within each round (which side runs
    first alternates), so a drift of the machine's speed, frequent on shared virtual machines, cancels."""
    for _ in range(2):  # warm-up: allocator, thread pool, oneDNN primitives and the inference cache
        for _ in range(repeats):
            plain_fn()
            tunable_fn()
    plain, tunable = [], []
    for i in range(rounds):
        order = ((plain, plain_fn), (tunable, tunable_fn))
        for times, fn in order if i % 2 == 0 else reversed(order):
            times.append(timed(lambda fn=fn: [fn() for _ in range(repeats)], device) / repeats)
    ratios = [t / p for p, t in zip(plain, tunable, strict=True)]
    first, _, third = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return Timing(
        statistics.median(plain), statistics.median(tunable), statistics.median(ratios), (first, third)
    )


def step(layer, x, backward: bool):
    def run():
        if backward:
            layer(x).sum().backward()
        else:
            with torch.no_grad():
                layer(x)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--ps", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "overhead.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    device, c = args.device, args.channels
    rows = []
    header = (
        f"{'batch':>5} {'p':>2} {'omega':>10} {'pass':>12} {'plain ms':>9} {'tunable ms':>10} {'ratio':>6}"
    )
    print(header)
    for batch in args.batches:
        x = torch.randn(batch, c, args.size, args.size, device=device)
        for p in args.ps:
            conv = nn.Conv2d(c, c, 3, padding=1).to(device)
            tunable = factory_for(conv)(nn.Conv2d(c, c, 3, padding=1).to(device), p)
            cases = [("shared", torch.rand(p, device=device))]
            if batch > 1:
                cases.append(("per-sample", torch.rand(batch, p, device=device)))
            if p <= 4:  # an ω map: one ω per pixel (spatial ω)
                cases.append(("per-pixel", torch.rand(batch, p, args.size, args.size, device=device)))
            for omega_kind, omega in cases:
                for backward in (False, True):

                    def tunable_call(x, omega=omega, tunable=tunable):
                        with use_omega(omega):
                            return tunable(x)

                    plain_ms, tunable_ms, ratio, _ = compare(
                        step(conv, x, backward),
                        step(tunable_call, x, backward),
                        device,
                        args.rounds,
                        args.repeats,
                    )
                    row = dict(
                        batch=batch,
                        p=p,
                        omega=omega_kind,
                        backward=backward,
                        plain_ms=1e3 * plain_ms,
                        tunable_ms=1e3 * tunable_ms,
                        ratio=ratio,
                    )
                    shared = next(
                        (
                            r
                            for r in rows
                            if (r["batch"], r["p"], r["omega"], r["backward"])
                            == (batch, p, "shared", backward)
                        ),
                        None,
                    )
                    if omega_kind == "per-pixel" and shared is not None:
                        row["ratio_to_shared"] = tunable_ms * 1e3 / shared["tunable_ms"]
                    rows.append(row)
                    kind = "fwd+bwd" if backward else "forward"
                    print(
                        f"{batch:>5} {p:>2} {omega_kind:>10} {kind:>12} {row['plain_ms']:>9.2f} "
                        f"{row['tunable_ms']:>10.2f} {row['ratio']:>6.3f}"
                    )
        # bake: a converted one-layer model baked at a fixed ω is an ordinary nn.Conv2d
        model = nn.Sequential(nn.Conv2d(c, c, 3, padding=1)).to(device)
        baked = tunify.bake(
            tunify.convert(nn.Sequential(nn.Conv2d(c, c, 3, padding=1)).to(device), 2),
            torch.tensor([0.3, 0.7]),
        )
        plain_ms, baked_ms, baked_ratio, _ = compare(
            step(model, x, False), step(baked, x, False), device, args.rounds, args.repeats
        )
        rows.append(
            dict(
                batch=batch,
                p=2,
                omega="baked",
                backward=False,
                plain_ms=1e3 * plain_ms,
                tunable_ms=1e3 * baked_ms,
                ratio=baked_ratio,
            )
        )
        print(
            f"{batch:>5} {2:>2} {'baked':>10} {'forward':>12} {1e3 * plain_ms:>9.2f} {1e3 * baked_ms:>10.2f} "
            f"{baked_ms / plain_ms:>6.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(
        device=device, torch=torch.__version__, threads=torch.get_num_threads(), channels=c, size=args.size
    )
    args.out.write_text(json.dumps({"config": meta, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
