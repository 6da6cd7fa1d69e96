"""``tunify demo``: the tunable denoiser on the embedded sample image with synthetic noise.

The embedded model (``tunify/assets/default_denoiser``) prints PSNR / PSNR_η across ω and writes the sweep
files and the tuning strip: the product working offline right after installation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data import add_gaussian_noise, read_image
from ..evaluate import sweep
from ..evaluate.report import format_omega
from ..hub import SAMPLE_IMAGE, embedded_model_dir, from_pretrained
from ._common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="denoise the embedded sample image across ω and write a tuning strip"
    )
    parser.add_argument("-o", "--output", default="tunify-demo", help="folder for the strip and sweep files")
    parser.add_argument(
        "--sigma", type=float, default=25.0, help="Gaussian noise level in 0-255 units (default 25)"
    )
    parser.add_argument(
        "--size", type=int, default=256, help="side of the center crop of the sample (default 256)"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.set_defaults(run=run)


def _sample(size: int, sigma: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if size < 16:
        raise UsageError(f"--size must be >= 16, got {size}")
    if not 0 < sigma <= 255:  # also refuses NaN
        raise UsageError(f"--sigma must lie in (0, 255] (0-255 units), got {sigma:g}")
    clean = read_image(SAMPLE_IMAGE)
    h, w = clean.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    clean = clean[:, top : top + size, left : left + size]
    noisy = add_gaussian_noise(clean[None], sigma, generator=torch.Generator().manual_seed(seed))[0]
    return clean, noisy


def run(args: argparse.Namespace) -> int:
    clean, noisy = _sample(args.size, args.sigma, args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    embedded = embedded_model_dir()
    model = from_pretrained(embedded)
    print(f"model: embedded tunable denoiser ({embedded.name})")
    print(
        f"image: kodim23 crop {clean.shape[-1]}x{clean.shape[-2]}, Gaussian noise σ = {args.sigma:g} (seed {args.seed})"
    )
    rows = sweep(
        model,
        [{"input": noisy, "clean": clean, "name": "kodim23"}],
        out_dir=out,
        dataset_name="sample (kodim23 crop)",
        degradation=f"gaussian σ={args.sigma:g}",
        strip_crop=args.size,
        progress=False,
    )
    print(f"\n{'ω':<14}{'PSNR (dB)':>10}{'PSNR_η (dB)':>13}")
    for row in rows:
        print(f"{format_omega(row['omega']):<14}{row['psnr']:>10.2f}{row['psnr_eta']:>13.2f}")
    print(f"\nwrote {out / 'tuning_strip.png'} (and sweep.json, sweep.md, psnr_vs_omega.png in {out})")
    return 0
