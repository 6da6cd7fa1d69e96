"""``tunify demo``: the tunable denoiser on the embedded sample image with synthetic noise.

With the embedded model (``tunify/assets/default_denoiser``) it prints PSNR / PSNR_η across ω and writes
the sweep files and the tuning strip. Until that model ships, it converts the real pretrained CDnCNN-B
from ``../shared`` and shows the point of conversion: every ω gives exactly the original network's output
(the table is flat until fine-tuning); without ``../shared`` it shows the same check on a timm network.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from ..convert import TunableModel, convert
from ..data import add_gaussian_noise, read_image
from ..evaluate import omega_grid, sweep, tuning_strip
from ..evaluate.report import format_omega
from ..hub import SAMPLE_IMAGE, embedded_model_dir, from_pretrained, pretrained_cdncnn
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
    clean = read_image(SAMPLE_IMAGE)
    h, w = clean.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    clean = clean[:, top : top + size, left : left + size]
    noisy = add_gaussian_noise(clean[None], sigma, generator=torch.Generator().manual_seed(seed))[0]
    return clean, noisy


def _max_diffs(
    model: TunableModel, original: torch.nn.Module, x: torch.Tensor
) -> list[tuple[list[float], float]]:
    """max |converted(x, ω) − original(x)| for each ω of the default grid."""
    with torch.inference_mode():
        ref = original(x)
        return [
            (omega.tolist(), (model(x, omega=omega.float()) - ref).abs().max().item())
            for omega in omega_grid(model.p)
        ]


def run(args: argparse.Namespace) -> int:
    clean, noisy = _sample(args.size, args.sigma, args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    embedded = embedded_model_dir()
    original = None
    if embedded is not None:
        model = from_pretrained(embedded)
        label = f"embedded tunable denoiser ({embedded.name})"
    else:
        base = pretrained_cdncnn()
        if base is None:
            return _timm_fallback(out, clean, noisy, args.sigma)
        original = copy.deepcopy(base).eval()
        model = convert(base, 2).eval()
        label = "CDnCNN-B colour blind (real pretrained weights from ../shared), converted with p = 2, not fine-tuned"
    print(f"model: {label}")
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
    if original is not None:
        diffs = _max_diffs(model, original, noisy[None])
        worst = max(d for _, d in diffs)
        print(
            f"\nequivalence: max |converted(ω) − original| over {len(diffs)} ω = {worst:.2e} "
            "(conversion keeps the network exact at every ω; fine-tuning makes ω matter)"
        )
    print(f"\nwrote {out / 'tuning_strip.png'} (and sweep.json, sweep.md, psnr_vs_omega.png in {out})")
    return 0


def _timm_fallback(out: Path, clean: torch.Tensor, noisy: torch.Tensor, sigma: float) -> int:
    """No denoiser at hand: show the conversion's equivalence on a freshly initialised timm network."""
    import timm

    base = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    original = copy.deepcopy(base)
    model = convert(base, 2).eval()
    print(
        "model: no pretrained denoiser found (none embedded, ../shared absent); timm resnet18, random init, p = 2"
    )
    diffs = _max_diffs(model, original, noisy[None])
    for omega, diff in diffs:
        print(f"ω = {format_omega(omega)}: max |converted − original| logits = {diff:.2e}")
    strip = tuning_strip(
        [(noisy.clamp(0, 1), f"noisy σ={sigma:g}"), (clean, "clean")], out / "tuning_strip.png"
    )
    print(f"\nwrote {strip}")
    return 0
