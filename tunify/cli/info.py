"""``tunify info REPO_OR_DIR``: what a saved model is and what each ω_i does, from config.json alone."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..hub import read_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", help="describe a saved tunable model (reads config.json only)")
    parser.add_argument("model", metavar="REPO_OR_DIR", help="a save_pretrained folder or Hub repo id")
    parser.add_argument("--revision", help="Hub revision")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hugging Face cache only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = read_config(args.model, revision=args.revision, local_files_only=args.local_files_only)
    info, base = config["info"], config["base"]
    kwargs = f" {json.dumps(base['kwargs'])}" if base.get("kwargs") else ""
    print(f"model:       {args.model}")
    print(f"base:        {base['architecture']}{kwargs}" + (f" ({base['class']})" if "class" in base else ""))
    if info.get("base_model"):
        print(f"base model:  {info['base_model']}")
    if info.get("task"):
        print(f"task:        {info['task']}")
    conversion = config["conversion"]
    print(
        f"p:           {config['p']}  ({len(conversion['layers'])} layers, {len(conversion['tensors'])} tensors tunable)"
    )
    print(f"tunify:      {config['tunify_version']}")
    if "map_averaged" in conversion:
        print(f"ω map:       {_map_line(conversion)}")
    objectives = {o.get("omega_index", i): o for i, o in enumerate(info.get("objectives", []))}
    for i in range(config["p"]):
        obj = objectives.get(i)
        what = f"{obj['name']}: {obj.get('description', '')}".rstrip(": ") if obj else "not documented"
        print(f"ω{i + 1}:          {what}")
    if info.get("metrics"):
        print("metrics:")
        print("\n".join(_metrics_lines(info["metrics"])))
    if info.get("training"):
        print("training:\n" + _indented_json(info["training"]))
    return 0


def _map_line(conversion: dict[str, Any]) -> str:
    """How a per-pixel ω map acts: exactly per pixel in most layers, through its average in the rest."""
    averaged = conversion["map_averaged"]
    total = len(conversion["layers"]) + len(conversion["tensors"])
    line = f"{total - len(averaged)} of {total} converted layers/tensors mix per pixel"
    if averaged:
        shown = ", ".join(averaged[:6]) + (f", … ({len(averaged) - 6} more)" if len(averaged) > 6 else "")
        line += f"; the map's average drives {shown}"
    return line


def _metrics_lines(metrics: Any) -> list[str]:
    """One table per eval set (rows: ω; columns: the metrics), the layout ``tunify.evaluate.sweep`` records."""
    is_table = isinstance(metrics, dict) and all(
        isinstance(rows, dict) and all(isinstance(row, dict) for row in rows.values())
        for rows in metrics.values()
    )
    if not is_table:
        return [_indented_json(metrics)]
    lines = []
    for eval_set, rows in metrics.items():
        columns = list(dict.fromkeys(key for row in rows.values() for key in row))
        width = max(len(label) for label in rows) if rows else 1
        lines.append(f"  {eval_set}")
        lines.append(f"    {'':<{width}}" + "".join(f"  {c:>10}" for c in columns))
        for label, row in rows.items():
            cells = "".join(f"  {_cell(row.get(c)):>10}" for c in columns)
            lines.append(f"    {label:<{width}}{cells}")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return "–" if value is None else str(value)


def _indented_json(value: Any) -> str:
    return "\n".join("  " + line for line in json.dumps(value, indent=2, ensure_ascii=False).splitlines())
