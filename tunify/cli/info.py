"""``tunify info REPO_OR_DIR_OR_FILE``: what a saved model is and what each ω_i does.

A folder or Hub repo is described from its ``config.json`` alone; a ``.safetensors`` file from its header
(the metadata ``tunify bake`` or ``tunify.save`` wrote), without reading the tensors.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..convert.io import SPEC_KEY
from ..hub import embedded_model_dir, read_config
from ._common import UsageError
from .bake import BAKED_KEY


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info", help="describe a saved tunable model (config.json only) or a baked .safetensors file (header)"
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="REPO_OR_DIR_OR_FILE",
        help="a save_pretrained folder, a Hub repo id, or a .safetensors file from tunify bake / tunify.save "
        "(default: the embedded model)",
    )
    parser.add_argument("--revision", help="Hub revision")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hugging Face cache only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    label = args.model
    if args.model is None:
        args.model = str(embedded_model_dir())
        label = f"the embedded model ({args.model})"
    if Path(args.model).is_file() and Path(args.model).suffix.lower() == ".safetensors":
        return _describe_file(Path(args.model))
    config = read_config(args.model, revision=args.revision, local_files_only=args.local_files_only)
    info, base = config["info"], config["base"]
    kwargs = f" {json.dumps(base['kwargs'])}" if base.get("kwargs") else ""
    print(f"model:       {label}")
    if info.get("note"):
        print(f"note:        {info['note']}")
    print(f"base:        {base['architecture']}{kwargs}" + (f" ({base['class']})" if "class" in base else ""))
    if info.get("base_model"):
        print(f"base model:  {info['base_model']}")
    if info.get("task"):
        print(f"task:        {info['task']}")
    conversion = config["conversion"]
    print(_p_line(config["p"], conversion))
    print(f"tunify:      {config['tunify_version']}")
    if "map_averaged" in conversion:
        print(f"ω map:       {map_line(conversion)}")
    _print_objectives(info.get("objectives", []), config["p"])
    if info.get("metrics"):
        print("metrics:")
        print("\n".join(_metrics_lines(info["metrics"])))
    if info.get("training"):
        print("training:\n" + _indented_json(info["training"]))
    return 0


def _p_line(p: int, conversion: dict[str, Any]) -> str:
    """p and what was made tunable: ``p:  2  (17 layers and 2 tensors tunable)``."""
    counts = [(len(conversion["layers"]), "layer"), (len(conversion["tensors"]), "tensor")]
    what = " and ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in counts if n)
    return f"p:           {p}  ({what} tunable)"


def map_line(conversion: dict[str, Any]) -> str:
    """How a per-pixel ω map acts: exactly per pixel in most layers, per token in Linear layers that see the
    image grid's tokens, through its average in the rest."""
    averaged = conversion["map_averaged"]
    per_token = conversion.get("map_per_token", [])  # absent from files written before the key existed
    total = len(conversion["layers"]) + len(conversion["tensors"])
    line = f"{total - len(averaged) - len(per_token)} of {total} converted layers/tensors mix per pixel"
    if per_token:
        where = "where their input holds the image's tokens or windows"
        line += f", {len(per_token)} per token (Linear layers, {where})"
    if averaged:
        shown = ", ".join(averaged[:6]) + (f", … ({len(averaged) - 6} more)" if len(averaged) > 6 else "")
        line += f"; the map's average drives {shown}"
    return line


def _print_objectives(objectives: list[dict[str, Any]], p: int) -> None:
    by_index = {o.get("omega_index", i): o for i, o in enumerate(objectives)}
    for i in range(p):
        obj = by_index.get(i)
        what = (
            ": ".join(t for t in (obj.get("name"), obj.get("description")) if t) if obj else "not documented"
        )
        print(f"ω{i + 1}:          {what}")


def _describe_file(path: Path) -> int:
    """A baked network (``tunify bake``) or a converted one (``tunify.save``), from the file's header."""
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise UsageError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        if BAKED_KEY in metadata:
            _print_baked(path, json.loads(metadata[BAKED_KEY]), params)
        elif SPEC_KEY in metadata:
            spec = json.loads(metadata[SPEC_KEY])
            print(f"file:        {path} (a converted network saved by tunify.save; {params:,} values)")
            print(_p_line(spec["p"], spec))
            print(f"tunify:      {spec.get('tunify_version', '?')}")
            print("load it with tunify.load(<the plain network>, path)")
        else:
            raise UsageError(
                f"{path}: no tunify metadata in the header (not written by tunify bake or tunify.save)"
            )
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(f"{path}: malformed tunify metadata ({error!r})") from None
    return 0


def _print_baked(path: Path, record: dict[str, Any], params: int) -> None:
    base = record["base"]
    kwargs = f" {json.dumps(base['kwargs'])}" if base.get("kwargs") else ""
    omega = ", ".join(f"{w:g}" for w in record["omega"])
    print(f"file:        {path} (a plain network baked at one ω; {params:,} values, buffers included)")
    print(f"base:        {base['architecture']}{kwargs}" + (f" ({base['class']})" if "class" in base else ""))
    print(f"baked at:    ω = ({omega})")
    revision = f" (revision {record['revision']})" if record.get("revision") else ""
    print(f"from:        {record['source']}{revision}")
    if record.get("task"):
        print(f"task:        {record['task']}")
    print(f"tunify:      {record.get('tunify_version', '?')}")
    _print_objectives(record.get("objectives", []), record["p"])


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
