"""The README's picture of ω as an image, made with the embedded tunable denoiser.

    python docs/figures.py            # writes docs/images/omega_map.png

A noisy crop of the embedded sample (σ = 25) denoised with a map whose ω1 (noise removed) rises from 0 at
the left edge to 1 at the right, beside the same network at either end everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import tunify
from tunify.data import add_gaussian_noise, read_image
from tunify.evaluate import tuning_strip
from tunify.hub import SAMPLE_IMAGE, embedded_model_dir

OUT = Path(__file__).resolve().parent / "images"


def omega_map_figure(path: Path, size: int = 192, sigma: float = 25.0) -> Path:
    clean = read_image(SAMPLE_IMAGE)[None, :, :size, -size:]
    noisy = add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(0))
    model = tunify.from_pretrained(embedded_model_dir()).eval()
    ramp = torch.linspace(0, 1, size).expand(size, size)  # ω1 across the columns
    omega_map = torch.stack([ramp, 1 - ramp])[None]  # (1, p, H, W): ω = (ω1, 1 − ω1) at every pixel
    with torch.no_grad():
        mapped = model(noisy, omega=omega_map)
        ends = [model(noisy, omega=torch.tensor(end)) for end in ((0.0, 1.0), (1.0, 0.0))]
    panels = [
        (noisy[0], f"noisy input (σ = {sigma:g})"),
        (ramp.expand(3, size, size), "ω map: ω1 from 0 (left)\nto 1 (right), ω2 = 1 − ω1"),
        (mapped[0], "output with the map"),
        (ends[0][0], "ω = (0, 1) everywhere:\nthe noise kept"),
        (ends[1][0], "ω = (1, 0) everywhere:\nthe noise removed"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    return tuning_strip(panels, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args()
    print(f"wrote {omega_map_figure(args.out / 'omega_map.png')}")


if __name__ == "__main__":
    main()
