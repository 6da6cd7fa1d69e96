"""Save and load converted models: safetensors weights plus the conversion spec in the file's metadata.

The spec (p, the converted names, the tunify version) is enough to convert a fresh copy of the base
network the same way, so loading is strict: every tensor must be there, with its shape.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from torch import nn

from .._atomic import save_safetensors
from .._errors import CheckpointError
from .._state_dict import load_state
from .._version import __version__
from .config import ConvertConfig
from .model import TunableModel
from .surgery import ConversionError, convert_with

SPEC_KEY = "tunify_spec"


def conversion_spec(tmodel: TunableModel) -> dict[str, Any]:
    """A JSON-able description from which :func:`apply_spec` repeats the conversion exactly."""
    report = tmodel.conversion_report()
    return {
        "tunify_version": __version__,
        "p": tmodel.p,
        "layers": [row.name for row in report if row.kind != "tensor"],
        "tensors": [row.name for row in report if row.kind == "tensor"],
        "allow_extrapolation": tmodel.config.allow_extrapolation,
        "independent": tmodel.config.independent,
        "batch_dim": tmodel.config.batch_dim,
        "strategy": tmodel.config.strategy,
        "strategy_options": tmodel.config.strategy_options,
        "map_averaged": [row.name for row in report if row.spatial == "average"],
        "map_per_token": [row.name for row in report if row.spatial == "per token"],
    }


def _exact(names: list[str]) -> str | None:
    return "|".join(re.escape(n) for n in names) if names else None


def apply_spec(model: nn.Module, spec: dict[str, Any]) -> TunableModel:
    """Convert ``model`` exactly as the spec says (the same layers, tensors and p)."""
    try:
        owners = ["" if name == "<root>" else name for name in spec["layers"]]
        config = ConvertConfig(
            p=int(spec["p"]),
            include="|".join(re.escape(n) for n in owners) if owners else "(?!)",  # "(?!)" matches nothing
            parameters=_exact(list(spec["tensors"])),
            allow_extrapolation=bool(spec.get("allow_extrapolation", False)),
            independent=bool(spec.get("independent", False)),
            batch_dim=int(spec.get("batch_dim", 0)),
            strategy=str(spec.get("strategy", "kernels")),
            strategy_options=dict(spec.get("strategy_options") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"malformed conversion spec ({error!r}): {spec}") from None
    expected = spec["layers"] + spec["tensors"]
    try:
        plan = convert_with(model, config, dry_run=True)
    except ConversionError as error:
        raise CheckpointError(
            f"the network does not have the converted layers the checkpoint expects: {expected} ({error})"
        ) from None
    found = plan.names()
    if sorted(found) != sorted(expected):
        missing = sorted(set(expected) - set(found))
        raise CheckpointError(
            f"the network does not have the converted layers the checkpoint expects: {missing}"
        )
    return convert_with(model, config)


def save(tmodel: TunableModel, path: str | os.PathLike) -> None:
    """Write the converted weights and the conversion spec to one ``.safetensors`` file, atomically."""
    save_safetensors(tmodel.base_model.state_dict(), path, {SPEC_KEY: json.dumps(conversion_spec(tmodel))})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, spec) from a tunify ``.safetensors`` file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if SPEC_KEY not in metadata:
        raise CheckpointError(f"{path}: no tunify conversion spec in the metadata (not saved by tunify.save)")
    try:
        spec = json.loads(metadata[SPEC_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: the conversion spec is not valid JSON ({error})") from None
    return state, spec


def load(model: nn.Module, path: str | os.PathLike) -> TunableModel:
    """Convert ``model`` (the plain base network) as recorded in ``path`` and load its weights strictly."""
    state, spec = read_checkpoint(path)
    tmodel = apply_spec(model, spec)
    load_strict(tmodel, state, str(path))
    return tmodel


def load_strict(tmodel: TunableModel, state: dict[str, Any], source: str) -> None:
    """Load ``state`` into ``tmodel.base_model``; any missing, unexpected or misshapen tensor is an error."""
    expected = tmodel.base_model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source} does not match the converted network: missing {missing[:10]}, unexpected "
            f"{unexpected[:10]}, shape mismatch {shapes[:10]}"
        )
    load_state(tmodel.base_model, state)
