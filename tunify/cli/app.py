"""``tunify app [--model REPO_OR_DIR] [--host H] [--port N]``: the interactive tuning app in a browser.

``--export-space DIR --model REPO`` writes a Hugging Face Space for a published model instead.
"""

from __future__ import annotations

import argparse
import importlib.util

from ._common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("app", help="tune a model interactively in a web page (needs tunify[app])")
    parser.add_argument(
        "--model", metavar="REPO_OR_DIR", help="a save_pretrained folder or Hub repo id (default: embedded)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    parser.add_argument(
        "--preview-side",
        type=int,
        default=512,
        help="longest side of the live preview in pixels (default 512)",
    )
    parser.add_argument(
        "--preview-precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="arithmetic of the live preview: float32 (exact, as tunify apply) or bfloat16 (about 2x faster "
        "on CPUs with native bfloat16, a few 8-bit levels off in places); downloads are always float32",
    )
    parser.add_argument(
        "--export-space", metavar="DIR", help="write a Hugging Face Space for --model (a Hub repo id) to DIR"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.export_space:
        from ..app.space import export_space

        if not args.model:
            raise UsageError("--export-space needs --model REPO: the Hub repo id the Space will load")
        path = export_space(args.export_space, args.model)
        print(f"wrote the Space to {path}: push it with `hf upload <you>/<space> {path} --repo-type space`")
        return 0
    if importlib.util.find_spec("gradio") is None:
        raise UsageError("the app needs gradio: pip install 'tunify[app]'")
    if args.preview_side < 16:
        raise UsageError(f"--preview-side must be at least 16, got {args.preview_side}")
    from ..app import Tuner

    tuner = Tuner.load(
        args.model, preview_side=args.preview_side, preview_precision=args.preview_precision
    )  # a bad model fails before gradio loads
    from ..app.serve import launch

    launch(tuner, host=args.host, port=args.port)
    return 0
