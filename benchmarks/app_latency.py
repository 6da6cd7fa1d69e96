"""The app's latency per slider move: what the server does between a slider's release and the new picture.

    python benchmarks/app_latency.py            # embedded denoiser, 512x512 and 256x256 previews, 2 threads

A move is ``Tuner.preview`` (synthetic noise σ = 25, one pass of the network at the new ω, PSNR / PSNR_η)
plus writing the PNG file the page hands to gradio (:class:`tunify.app.shown.ShownImages`); each move sets
a new ω, so no result is reused. The same network baked to a plain one at a fixed ω is timed alongside
(float32, in the memory layout the app uses): the floor set by the architecture. Each preview precision (``--preview-precision`` of ``tunify app``)
is timed; a bfloat16 row also records how far its picture is from the float32 one, in 8-bit levels. The
picture is the centre crop of Kodak24's kodim23 (../shared), or the embedded sample upscaled without it.
Writes benchmarks/results/app_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import tunify
from tunify.app import Settings, Tuner, open_picture
from tunify.app.session import PREVIEW_PRECISIONS, bfloat16_is_native
from tunify.app.shown import ShownImages
from tunify.data import read_image, write_image
from tunify.hub import SAMPLE_IMAGE
from tunify.inference import network_input

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "datasets" / "Kodak24" / "kodim23.png"


def picture_file(side: int, folder: Path) -> tuple[Path, str]:
    """A side x side PNG to open in the app, and where it came from (repo-relative)."""
    source = KODAK if KODAK.is_file() else SAMPLE_IMAGE
    img = read_image(source)[None]
    if min(img.shape[-2:]) < side:
        img = F.interpolate(img, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
    h, w = img.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    path = write_image(img[0, :, top : top + side, left : left + side], folder / f"crop{side}.png")
    return path, os.path.relpath(source, ROOT)


def measure(tuner: Tuner, path: Path, moves: int) -> dict[str, float]:
    picture = open_picture(path)
    shown = ShownImages()
    omegas = [
        tuner.controls.omega([v]) if tuner.controls.mode == "trade-off" else tuner.controls.default_omega()
        for v in np.linspace(0.05, 0.95, moves + 1)
    ]
    tuner.preview(picture, Settings(omega=omegas[0], levels=[25.0]))  # warm-up: allocator, thread pool
    seconds = []
    for omega in omegas[1:]:
        start = time.perf_counter()
        result = tuner.preview(picture, Settings(omega=omega, levels=[25.0]))
        shown(result.after)  # the PNG file the page hands to gradio
        seconds.append(time.perf_counter() - start)
    plain = tunify.bake(tuner.model, torch.tensor(omegas[0]))
    x = network_input(plain, picture.clean)
    baked = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            plain(x)
            baked.append(time.perf_counter() - start)
    return {
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "baked_forward_median_s": round(statistics.median(baked), 3),
        "moves": moves,
        "picture": result.after,
    }


def _cpu_name() -> str:
    """The processor's model name (runs on different machines are compared by it), else its architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="save_pretrained folder or Hub repo id (default: the embedded denoiser)"
    )
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 256], help="preview sides to time")
    parser.add_argument("--moves", type=int, default=6, help="slider moves per side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PREVIEW_PRECISIONS,
        default=[p for p in PREVIEW_PRECISIONS if p == "float32" or bfloat16_is_native()],
        help="preview precisions to time (default: float32, and bfloat16 where this CPU has it natively)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "app_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            path, source = picture_file(side, Path(tmp))
            exact = None
            for precision in args.precisions:
                tuner = Tuner.load(args.model, preview_side=side, preview_precision=precision)
                row = {"side": side, "precision": precision, "image": source}
                row.update(measure(tuner, path, args.moves))
                picture = row.pop("picture")
                if exact is None:
                    exact = picture
                else:
                    row["max_levels_from_float32"] = int(
                        np.abs(picture.astype(int) - exact.astype(int)).max()
                    )
                rows.append(row)
                print(json.dumps(row))
    report = {
        "what": "seconds per slider move in tunify app (Tuner.preview + PNG encoding), synthetic noise σ = 25",
        "model": args.model or os.path.relpath(tunify.hub.embedded_model_dir(), ROOT),
        "threads": args.threads,
        "cpu": _cpu_name(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "target_s": 1.5,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
