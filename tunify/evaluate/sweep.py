"""Evaluate a tunable network over a grid of ω: the curves and strips that show what tuning does.

Works with any module called as `model(x, omega=omega)` (ω of shape (p,) or (B, p)). With `per_sample=True`
one image is repeated along the batch with a different ω row per sample, so a whole ω grid costs a few
batched forwards instead of one forward per ω.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tunify.evaluate.metrics import TargetFn, noise_preservation_target, psnr, psnr_eta, ssim
from tunify.evaluate.perceptual import LPIPS, MetricUnavailableError
from tunify.evaluate.report import (
    Row,
    format_omega,
    plot_psnr_vs_omega,
    tuning_strip,
    write_json,
    write_markdown,
)

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


def omega_grid(p: int, values: Sequence[float] = DEFAULT_VALUES, *, mode: str = "line") -> torch.Tensor:
    """ω points [N, p] (float64) to evaluate.

    mode "line": p = 1 -> the values; p = 2 -> (v, 1 − v), the paper's convention; p > 2 -> the p corners
    e_i and the centre (1/p, ..., 1/p). mode "full": the Cartesian product of `values` (5^p points by default).
    """
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    if mode == "full":
        return torch.tensor(list(itertools.product(values, repeat=p)), dtype=torch.float64)
    if mode != "line":
        raise ValueError(f"mode must be 'line' or 'full', got {mode!r}")
    if p == 1:
        return torch.tensor(values, dtype=torch.float64)[:, None]
    if p == 2:
        v = torch.tensor(values, dtype=torch.float64)
        return torch.stack([v, 1 - v], dim=1)
    return torch.cat([torch.eye(p, dtype=torch.float64), torch.full((1, p), 1.0 / p, dtype=torch.float64)])


def _as_omegas(
    omegas: torch.Tensor | Sequence[Sequence[float]] | None, p: int | None, model: Any, grid: str
) -> torch.Tensor:
    """The (N, p) float64 ω points, checked against `model.p` so a wrong grid fails before any forward."""
    if omegas is None:
        p = p if p is not None else getattr(model, "p", None)
        if p is None:
            raise ValueError("pass omegas or p (the model has no `p` attribute)")
        return omega_grid(p, mode=grid)
    om = torch.as_tensor(omegas, dtype=torch.float64)
    if om.ndim != 2 or om.shape[0] == 0:
        raise ValueError(f"omegas must be a non-empty (N, p) list or tensor, got shape {tuple(om.shape)}")
    model_p = getattr(model, "p", None)
    if isinstance(model_p, int) and om.shape[1] != model_p:
        raise ValueError(f"omegas have {om.shape[1]} entries but the model has p = {model_p}")
    return om


def _center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[..., top : top + ch, left : left + cw]


class _Metrics:
    """Per-ω accumulation of per-image scores."""

    def __init__(self, n_omega: int, use_lpips: bool) -> None:
        keys = ["psnr", "psnr_eta", "ssim"] + (["lpips"] if use_lpips else [])
        self.scores: list[dict[str, list[float]]] = [{k: [] for k in keys} for _ in range(n_omega)]

    def add(self, start: int, key: str, values: torch.Tensor) -> None:
        for j, v in enumerate(values.tolist()):
            self.scores[start + j][key].append(float(v))


def sweep(
    model: nn.Module | Callable[..., torch.Tensor],
    dataset: Iterable[Mapping[str, Any]],
    omegas: torch.Tensor | Sequence[Sequence[float]] | None = None,
    *,
    out_dir: str | Path | None = None,
    p: int | None = None,
    grid: str = "line",
    per_sample: bool = True,
    max_batch: int = 8,
    forward: Forward | None = None,
    target_fn: TargetFn | None = noise_preservation_target,
    y_channel: bool = False,
    crop_border: int = 0,
    lpips: bool = False,
    device: str | torch.device | None = None,
    strip_index: int = 0,
    strip_crop: int = 128,
    dataset_name: str | None = None,
    degradation: str | None = None,
    progress: bool = True,
    note: str | None = None,
) -> list[Row]:
    """Evaluate `model` at every ω over `dataset` and (with `out_dir`) write the four report files.

    Args:
        model: called as `model(x, omega=omega)`; put in eval mode for the sweep (its mode is restored after).
        dataset: items are dicts with "input" (C, h, w), "clean" (C, H, W) and optionally "name"
            (`tunify.data.ImageFolderEval` / `PairedSRFolder`).
        omegas: ω points (N, p); default `omega_grid(p, mode=grid)`, with p from `p` or `model.p`.
        per_sample: batch ω rows of one image (ω of shape (B, p)); False calls the model once per ω with a
            shared ω of shape (p,).
        max_batch: most ω rows in one forward.
        forward: `forward(x, omega) -> y` override (e.g. tiled inference); default `model(x, omega=omega)`.
        target_fn: `target_fn(clean, degraded, omega_rows) -> target` for PSNR_η, where `degraded` is
            clean + the item's recorded "noise" when there is one (blur is not noise), else the input. The
            default, the paper's noise-preservation target, needs p >= 2 and same-size input/clean;
            otherwise (or with None) the target is the clean image and PSNR_η equals PSNR.
        y_channel, crop_border: metric convention (Y channel and `crop_border=scale` for SR).
        lpips: also compute LPIPS when it is available offline; otherwise warn and skip it.
        device: where inputs and ω go (the model must already be there); default the model's device (a
            network trained on a GPU is swept there), or the input's for a plain callable.
        strip_index, strip_crop: which image, and the side of the center crop, shown in tuning_strip.png.
        dataset_name, degradation: labels for the rows; default the dataset's `name`/`degradation_label`.
        note: a caveat kept with the numbers (e.g. "pipeline check, not a result"): a "note" in every row,
            the first line of sweep.md and the figure's title.

    Returns:
        One row per ω: {"omega", "dataset", "degradation", "n_images", "psnr", "psnr_eta", "ssim",
        ["lpips"], "per_image": {"name", "psnr", "psnr_eta", "ssim", ["lpips"]}}; means are of per-image scores.
    """
    om = _as_omegas(omegas, p, model, grid)  # [N, p] float64
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    device = device if device is not None else _model_device(model)
    lpips_metric = _make_lpips(lpips, device)
    # x is scored at every ω: each call gets a copy, for networks that write into their input (RCAN)
    run = forward if forward is not None else (lambda x, o: model(x.clone(), omega=o))
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    try:
        cfg = _Settings(
            per_sample=per_sample,
            max_batch=max_batch,
            target_fn=target_fn,
            y_channel=y_channel,
            crop_border=crop_border,
            lpips_metric=lpips_metric,
            device=device,
            strip_index=strip_index,
            strip_crop=strip_crop,
            progress=progress,
        )
        metrics, names, strip = _run(run, dataset, om, cfg)
    finally:
        if was_training:
            model.train()
    rows = _rows(om, metrics, names, dataset, dataset_name, degradation)
    if note:
        for row in rows:
            row["note"] = note
    if out_dir is not None:
        _write_outputs(rows, strip, Path(out_dir))
    return rows


def _model_device(model: nn.Module | Callable[..., torch.Tensor]) -> torch.device | None:
    """Where the model's first parameter or buffer lives; None for a callable or a model without tensors."""
    if not isinstance(model, nn.Module):
        return None
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return None if tensor is None else tensor.device


def _make_lpips(enabled: bool, device: str | torch.device | None) -> LPIPS | None:
    if not enabled:
        return None
    try:
        return LPIPS(device=device or "cpu")
    except MetricUnavailableError as e:
        warnings.warn(str(e), stacklevel=3)
        return None


@dataclass
class _Settings:
    per_sample: bool
    max_batch: int
    target_fn: TargetFn | None
    y_channel: bool
    crop_border: int
    lpips_metric: LPIPS | None
    device: str | torch.device | None
    strip_index: int
    strip_crop: int
    progress: bool


@torch.no_grad()
def _run(
    run: Forward, dataset: Iterable[Mapping[str, Any]], om: torch.Tensor, cfg: _Settings
) -> tuple[_Metrics, list[str], list[tuple[torch.Tensor, str]]]:
    n = om.shape[0]
    metrics = _Metrics(n, cfg.lpips_metric is not None)
    names: list[str] = []
    strip: list[tuple[torch.Tensor, str]] = []
    step = cfg.max_batch if cfg.per_sample else 1
    chunks = [(s, min(s + step, n)) for s in range(0, n, step)]
    total = len(dataset) * len(chunks) if hasattr(dataset, "__len__") else None
    kw = {"y_channel": cfg.y_channel, "crop_border": cfg.crop_border}
    with tqdm(total=total, desc="ω sweep", unit="fwd", disable=not cfg.progress) as bar:
        for idx, item in enumerate(dataset):
            x, clean = item["input"], item["clean"]
            names.append(str(item.get("name", idx)))
            x_dev = x.to(cfg.device if cfg.device is not None else x.device)[None]
            fn = cfg.target_fn
            if fn is noise_preservation_target and (om.shape[1] < 2 or x.shape != clean.shape):
                fn = None
            reference = _noisy_reference(item, x, clean)[None]
            outputs = []
            for s, e in chunks:
                rows = om[s:e].to(device=x_dev.device, dtype=x.dtype)  # [b, p]
                y = run(x_dev.expand(e - s, *x.shape), rows) if cfg.per_sample else run(x_dev, rows[0])
                y = y.float().cpu()
                if y.shape[1:] != clean.shape:
                    raise ValueError(
                        f"model output {tuple(y.shape[1:])} does not match clean {tuple(clean.shape)}"
                    )
                c = clean[None].expand_as(y)
                metrics.add(s, "psnr", psnr(y, c, **kw))
                if fn is None:  # no ω-dependent target (SR: input and output sizes differ): PSNR_η = PSNR
                    metrics.add(s, "psnr_eta", psnr(y, c, **kw))
                else:
                    metrics.add(
                        s, "psnr_eta", psnr_eta(y, c, reference.expand_as(y), om[s:e], target_fn=fn, **kw)
                    )
                metrics.add(s, "ssim", ssim(y, c, **kw))
                if cfg.lpips_metric is not None:
                    metrics.add(s, "lpips", cfg.lpips_metric(y, c))
                if idx == cfg.strip_index:
                    outputs.append(y)
                bar.update(1)
            if outputs:
                strip = _strip_panels(x, clean, torch.cat(outputs), om, metrics, cfg, **kw)
    if not names:
        raise ValueError("the dataset is empty")
    return metrics, names, strip


def _noisy_reference(item: Mapping[str, Any], x: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The degraded image ω-dependent targets read: the clean image plus only the noise the degradation
    recorded (``item["noise"]``), so that with blur + noise a noise-preserving target keeps the noise and not
    the blur, as in training; the input itself when no noise is recorded. The training side's twin is
    ``tunify.objectives.pixel.noise_only_input``: the layering contract keeps evaluate and objectives apart."""
    noise = item.get("noise")
    if isinstance(noise, torch.Tensor) and noise.shape == clean.shape:
        return clean + noise
    return x


def _strip_panels(
    x: torch.Tensor,
    clean: torch.Tensor,
    outputs: torch.Tensor,
    om: torch.Tensor,
    metrics: _Metrics,
    cfg: _Settings,
    *,
    y_channel: bool,
    crop_border: int,
) -> list[tuple[torch.Tensor, str]]:
    """Input, every ω output, then the clean image: the same center crop, captioned with ω and PSNR."""
    shown = x if x.shape == clean.shape else F.interpolate(x[None], size=clean.shape[-2:], mode="nearest")[0]
    in_psnr = psnr(shown, clean, y_channel=y_channel, crop_border=crop_border).item()
    panels = [(_center_crop(shown, cfg.strip_crop), f"input\n{in_psnr:.2f} dB")]
    for j, y in enumerate(outputs):
        caption = f"ω={format_omega(om[j].tolist())}\n{metrics.scores[j]['psnr'][-1]:.2f} dB"
        panels.append((_center_crop(y, cfg.strip_crop), caption))
    panels.append((_center_crop(clean, cfg.strip_crop), "clean"))
    return panels


def _rows(
    om: torch.Tensor,
    metrics: _Metrics,
    names: list[str],
    dataset: Any,
    dataset_name: str | None,
    degradation: str | None,
) -> list[Row]:
    ds_name = dataset_name or getattr(dataset, "name", type(dataset).__name__)
    deg = degradation or getattr(dataset, "degradation_label", "unknown")
    rows: list[Row] = []
    for j, scores in enumerate(metrics.scores):
        row: Row = {"omega": om[j].tolist(), "dataset": ds_name, "degradation": deg, "n_images": len(names)}
        row.update({k: sum(v) / len(v) for k, v in scores.items()})
        row["per_image"] = {"name": names, **scores}
        rows.append(row)
    return rows


def _write_outputs(rows: list[Row], strip: list[tuple[torch.Tensor, str]], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(rows, out_dir / "sweep.json")
    write_markdown(rows, out_dir / "sweep.md")
    plot_psnr_vs_omega(rows, out_dir / "psnr_vs_omega.png")
    if strip:
        tuning_strip(strip, out_dir / "tuning_strip.png")
