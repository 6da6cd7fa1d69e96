"""Inference time of an exported tunable network in ONNX Runtime against PyTorch, side by side in one run.

    python benchmarks/export.py                       # the embedded denoiser, 1×3×256×256, the README's table
    python benchmarks/export.py --model my-tunable-nafnet --size 128 --threads 1

At one fixed ω, each case is timed in interleaved rounds (median of rounds, so every case sees the same
machine state): PyTorch with the tunable network (its kernels mixed once and cached), PyTorch with the baked
network, and ONNX Runtime with the baked file and both live-ω files (``mix="weights"``: kernels mixed in the
graph on every run; ``mix="outputs"``: p constant-kernel convolutions per layer, outputs mixed). Every
ONNX output is checked against PyTorch first. Results: ``benchmarks/results/export.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import tunify
from tunify.hub import embedded_model_dir

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(cases: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each case, the cases alternating within every round."""
    for fn in cases.values():  # warm-up: allocators, thread pools, the tunable network's kernel cache
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name].append((time.perf_counter() - start) / repeats)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="save_pretrained folder or Hub id (default: the embedded denoiser)")
    parser.add_argument("--omega", default="0.7,0.3", help="the fixed ω (default 0.7,0.3)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch and ONNX Runtime alike")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    tmodel = tunify.from_pretrained(args.model or embedded_model_dir()).eval()
    omega = torch.tensor([float(v) for v in args.omega.split(",")])
    plain = tunify.bake(tmodel, omega).eval()
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = tmodel(x, omega=omega).numpy()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    forms = {
        "onnx baked": ({"omega": omega}, {}),
        "onnx weights": ({"mix": "weights"}, {"omega": omega.numpy()}),
        "onnx outputs": ({"mix": "outputs"}, {"omega": omega.expand(args.batch, -1).contiguous().numpy()}),
    }
    sessions: dict[str, tuple[ort.InferenceSession, dict]] = {}
    export_seconds: dict[str, float] = {}
    errors: dict[str, float] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (kwargs, feeds) in forms.items():
            start = time.perf_counter()
            try:
                path = tunify.export(tmodel, Path(folder) / f"{name.split()[1]}.onnx", **kwargs)
            except (
                ValueError
            ) as error:  # a form this tunify's layers cannot trace (per-pixel ω before it landed)
                skipped[name] = str(error)
                print(f"{name}: not measured: {error}")
                continue
            export_seconds[name] = time.perf_counter() - start
            session = ort.InferenceSession(str(path), options)
            feeds = {"x": x.numpy(), **feeds}
            errors[name] = float(np.abs(session.run(None, feeds)[0] - reference).max())
            sessions[name] = (session, feeds)

    def torch_call(module: Callable[..., torch.Tensor], **kwargs: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return module(x, **kwargs)

        return run

    cases: dict[str, Callable[[], object]] = {
        "torch tunable": torch_call(tmodel, omega=omega),
        "torch baked": torch_call(plain),
    }
    for name, (session, feeds) in sessions.items():
        cases[name] = lambda session=session, feeds=feeds: session.run(None, feeds)
    seconds = median_seconds(cases, args.rounds, args.repeats)

    base = seconds["torch baked"]
    rows = [
        {
            "case": name,
            "ms": round(1000 * s, 2),
            "ratio_to_torch_baked": round(s / base, 3),
            "max_abs_error": errors.get(name, 0.0),
            "export_seconds": round(export_seconds[name], 1) if name in export_seconds else None,
        }
        for name, s in seconds.items()
    ]
    config = {
        "model": args.model or "tunify/assets/default_denoiser (the embedded denoiser)",
        "omega": [round(v, 6) for v in omega.tolist()],
        "input": list(x.shape),
        "threads": args.threads,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "machine": platform.machine(),
        "command": "python benchmarks/export.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out" and v != parser.get_default(k)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"config": config, "rows": rows, "skipped": skipped}, indent=1, ensure_ascii=False) + "\n"
    )
    print(f"{'case':<16}{'ms':>10}{'× baked':>10}{'max |err|':>12}")
    for row in rows:
        print(
            f"{row['case']:<16}{row['ms']:>10.2f}{row['ratio_to_torch_baked']:>10.3f}{row['max_abs_error']:>12.2e}"
        )
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    print(f"-> {shown}")


if __name__ == "__main__":
    main()
