"""Sweep outputs: sweep.json, a Markdown table, the PSNR-vs-ω plot and the labelled tuning strip."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

Row = dict[str, Any]


def format_omega(omega: Sequence[float]) -> str:
    return "(" + ", ".join(f"{w:.2f}" for w in omega) + ")"


def write_json(rows: Sequence[Row], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(list(rows), indent=2) + "\n")
    return path


def write_markdown(rows: Sequence[Row], path: str | Path) -> Path:
    """One table per (dataset, degradation): ω, PSNR, PSNR_η, SSIM (and LPIPS when measured), after the
    rows' "note" when they carry one."""
    notes = list(dict.fromkeys(r["note"] for r in rows if r.get("note")))
    lines: list[str] = [f"> **{note}**\n" for note in notes]
    has_lpips = any("lpips" in r for r in rows)
    header = "| ω | PSNR (dB) | PSNR_η (dB) | SSIM |" + (" LPIPS |" if has_lpips else "")
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["degradation"]), []).append(r)
    for (dataset, degradation), group in groups.items():
        n = group[0].get("n_images", "?")
        lines += [f"### {dataset} — {degradation} ({n} images)", "", header]
        lines.append("|---|---:|---:|---:|" + ("---:|" if has_lpips else ""))
        for r in group:
            cells = [format_omega(r["omega"]), f"{r['psnr']:.2f}", f"{r['psnr_eta']:.2f}", f"{r['ssim']:.4f}"]
            if has_lpips:
                cells.append(f"{r['lpips']:.4f}" if "lpips" in r else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def plot_psnr_vs_omega(rows: Sequence[Row], path: str | Path) -> Path:
    """PSNR and PSNR_η against ω1; on a full grid, one line per value of the remaining coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one_line = len({r["omega"][0] for r in rows}) == len(rows)
    groups: dict[tuple[float, ...], list[Row]] = {}
    for r in rows:
        groups.setdefault(() if one_line else tuple(r["omega"][1:]), []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, title in zip(axes, ("psnr", "psnr_eta"), ("PSNR", "PSNR_η"), strict=True):
        for rest, group in groups.items():
            group = sorted(group, key=lambda r: r["omega"][0])
            label = None if one_line else "ω2.. = " + format_omega(rest)
            ax.plot([r["omega"][0] for r in group], [r[key] for r in group], "o-", label=label)
        ax.set(xlabel="ω1", ylabel=f"{title} (dB)", title=f"{title} vs ω1 — {rows[0]['dataset']}")
        ax.grid(alpha=0.3)
        if not one_line:
            ax.legend(fontsize=7)
    note = rows[0].get("note")
    fig.suptitle(f"{note}\n{rows[0]['degradation']}" if note else str(rows[0]["degradation"]), fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib (it has ω and η, Pillow's default font does not), else Pillow's default."""
    from matplotlib import font_manager

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), size)
    except (OSError, ValueError):
        return ImageFont.load_default(size=size)


def tuning_strip(
    panels: Sequence[tuple[torch.Tensor, str] | None], path: str | Path, *, max_cols: int = 8
) -> Path:
    """Lay out image crops (3, h, w) in [0, 1] side by side (wrapping after `max_cols`), each captioned below;
    a None panel leaves its cell blank (to keep a grid's columns aligned)."""
    if not any(panels):
        raise ValueError("tuning_strip needs at least one panel")
    h, w = next(p for p in panels if p)[0].shape[-2:]
    font = _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    shown = [p for p in panels if p]
    text_w = max(measure.multiline_textbbox((0, 0), c, font=font)[2] for _, c in shown)
    caption_h = max(measure.multiline_textbbox((0, 0), c, font=font)[3] for _, c in shown) + 6
    col_w, pad = max(w, text_w + 4), 4
    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    sheet = Image.new("RGB", (cols * (col_w + pad) + pad, rows * (h + caption_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, panel in enumerate(panels):
        if panel is None:
            continue
        img, caption = panel
        x0 = pad + (i % cols) * (col_w + pad)
        y0 = pad + (i // cols) * (h + caption_h + pad)
        arr = img.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().permute(1, 2, 0).numpy()
        sheet.paste(Image.fromarray(arr), (x0 + (col_w - img.shape[-1]) // 2, y0))
        draw.multiline_text((x0 + 2, y0 + h + 3), caption, fill="black", font=font, spacing=2)
    path = Path(path)
    sheet.save(path)
    return path
