"""``tunify export [MODEL] -o model.onnx``: a tunable model as an ONNX file (or ``.pt2``) for apps."""

from __future__ import annotations

import argparse

from ..export import MIX_FORMS, MissingDependencyError, export
from ..export.metadata import objectives
from ..export.program import example_input
from ._common import UsageError, load_model, parse_omega


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="write a tunable model as ONNX (.onnx) or a torch.export program (.pt2), ω live or baked",
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="a save_pretrained folder or Hub repo id (default: the embedded model)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="model.onnx or model.pt2")
    parser.add_argument(
        "--omega", help="bake ω in (comma-separated, e.g. 0.7,0.3); default: ω is a second input"
    )
    parser.add_argument(
        "--mix",
        choices=MIX_FORMS,
        default="weights",
        help="live ω: mix the kernels in the graph (weights, ω of shape (p,)) or the p convolutions' "
        "outputs (outputs, ω of shape (B, p)); default weights",
    )
    parser.add_argument(
        "--spatial",
        action="store_true",
        help="ω as a map (B, p, H, W), one ω per pixel (needs --mix outputs)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=2,
        help="batch size of the trace (default 2): a network whose code fixes its batch (HAT, DAT, …) keeps "
        "this one; 1 fixes the batch of any network (torch.export takes a size of 1 as fixed)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        metavar="H,W",
        help="spatial size of the traced example (default 67,61, or the size the network states); for a "
        "network that takes one size only",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of MODEL")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hugging Face cache only")
    parser.set_defaults(run=run, device="cpu")


def _size(text: str) -> tuple[int, ...]:
    """``H,W`` (or one number for a square) as a tuple of positive ints."""
    try:
        size = tuple(int(part) for part in text.split(","))
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W (positive integers), got {text!r}")
    return size


def run(args: argparse.Namespace) -> int:
    if args.omega is not None and (args.spatial or args.mix != "weights"):
        raise UsageError("--omega bakes ω in: it cannot be combined with --mix outputs or --spatial")
    if args.spatial and args.mix != "outputs":
        raise UsageError("--spatial needs --mix outputs (per-pixel ω mixes the outputs of the p kernels)")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    tmodel = load_model(args)
    omega = None
    if args.omega is not None:
        omega = parse_omega(args.omega, tmodel.p, tmodel.config.allow_extrapolation)
    example = example_input(tmodel, args.batch, args.size)
    try:
        path = export(
            tmodel,
            args.output,
            omega=omega,
            mix=args.mix,
            spatial=args.spatial,
            opset=args.opset,
            example=example,
        )
    except MissingDependencyError as error:
        raise UsageError(str(error)) from None
    if omega is not None:
        print(f"wrote {path}: the network baked at ω = ({args.omega}); input 'x'")
    else:
        shape = {"weights": f"({tmodel.p},)", "outputs": f"(B, {tmodel.p})"}[args.mix]
        shape = f"(B, {tmodel.p}, H, W)" if args.spatial else shape
        print(f"wrote {path}: inputs 'x' and 'omega' {shape}, ω mixed by {args.mix}")
    for obj in objectives(tmodel):
        print(f"  ω{obj['omega_index'] + 1}: {obj['name']}: {obj['description']}")
    semantics = "independent knobs" if tmodel.config.independent else "a trade-off (entries sum to 1)"
    print(f"  ω is {semantics}; the file's metadata_props (tunify.*) say all this")
    return 0
