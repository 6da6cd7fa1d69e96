"""``tunify info REPO_OR_DIR``: what a saved model is and what each ω_i does, from config.json alone."""

from __future__ import annotations

import argparse
import json

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
    objectives = {o.get("omega_index", i): o for i, o in enumerate(info.get("objectives", []))}
    for i in range(config["p"]):
        obj = objectives.get(i)
        what = f"{obj['name']}: {obj.get('description', '')}".rstrip(": ") if obj else "not documented"
        print(f"ω{i + 1}:          {what}")
    for key in ("metrics", "training"):
        if info.get(key):
            print(
                f"{key}:\n" + "\n".join("  " + line for line in json.dumps(info[key], indent=2).splitlines())
            )
    return 0
