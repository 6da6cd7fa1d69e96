"""What an exported file says about ω, so an app can build its controls from the file alone.

Every value is a string (ONNX ``metadata_props`` hold strings); structured ones are JSON. Keys:

- ``tunify.p``: the number of tunable parameters.
- ``tunify.omega.input``: the graph input that takes ω (empty when ω is baked in).
- ``tunify.omega.shape``: that input's shape as a JSON list (``["p"]``, ``["batch", "p"]`` or
  ``["batch", "p", "height", "width"]`` with ``p`` spelled out as a number).
- ``tunify.omega.semantics``: ``simplex`` (a trade-off: the entries are weights that sum to 1; ω and
  ω + c·1 give the same network) or ``independent`` (each entry its own knob in [0, 1]).
- ``tunify.omega.range``: ``[0, 1]``, or ``unbounded`` for models converted with ``allow_extrapolation``.
- ``tunify.omega.baked``: the ω a baked export was fixed at (JSON list), else absent.
- ``tunify.omega.default``: a sensible starting ω (the middle of the range) as a JSON list.
- ``tunify.objectives``: JSON list, one ``{"omega_index", "name", "description"}`` per ω entry.
- ``tunify.mix``: ``weights``, ``outputs`` or ``baked`` (how the graph applies ω).
- ``tunify.version``, ``tunify.base`` (the base architecture), ``tunify.task`` when known.
"""

from __future__ import annotations

import json
from typing import Any

from torch import Tensor

from .._version import __version__
from ..convert import TunableModel

PREFIX = "tunify."


def omega_shape(p: int, mix: str, spatial: bool) -> list[str | int]:
    """The shape of the ω input of a live export (see :func:`tunify.export.export`)."""
    if spatial:
        return ["batch", p, "height", "width"]
    return [p] if mix == "weights" else ["batch", p]


def objectives(tmodel: TunableModel) -> list[dict[str, Any]]:
    """One entry per ω index, from ``tmodel.info['objectives']``; undocumented entries say so."""
    documented = {
        o.get("omega_index", i): o
        for i, o in enumerate(tmodel.info.get("objectives", []))
        if isinstance(o, dict)
    }
    rows = []
    for i in range(tmodel.p):
        obj = documented.get(i, {})
        rows.append(
            {
                "omega_index": i,
                "name": str(obj.get("name", f"omega{i + 1}")),
                "description": str(obj.get("description", "not documented")),
            }
        )
    return rows


def base_architecture(tmodel: TunableModel) -> str:
    """The base network's architecture as the Hub records it (``custom`` for the user's own class)."""
    from ..hub.config import describe_base

    return str(describe_base(tmodel.base_model).get("architecture", "custom"))


def export_metadata(
    tmodel: TunableModel, *, baked: Tensor | None, mix: str, spatial: bool, omega_input: str = "omega"
) -> dict[str, str]:
    """The ``tunify.*`` metadata of one export, every value a string."""
    config = tmodel.config
    independent = config.independent
    meta = {
        "version": __version__,
        "p": str(tmodel.p),
        "omega.input": "" if baked is not None else omega_input,
        "omega.shape": json.dumps([] if baked is not None else omega_shape(tmodel.p, mix, spatial)),
        "omega.semantics": "independent" if independent else "simplex",
        "omega.range": "unbounded" if config.allow_extrapolation else "[0, 1]",
        "omega.default": json.dumps([0.5] * tmodel.p if independent else [round(1 / tmodel.p, 6)] * tmodel.p),
        "objectives": json.dumps(objectives(tmodel), ensure_ascii=False),
        "mix": "baked" if baked is not None else mix,
        "base": base_architecture(tmodel),
    }
    if baked is not None:
        meta["omega.baked"] = json.dumps([round(float(v), 6) for v in baked.reshape(-1)])
    if isinstance(tmodel.info.get("task"), str):
        meta["task"] = tmodel.info["task"]
    return {PREFIX + key: value for key, value in meta.items()}


def describe(meta: dict[str, str]) -> str:
    """One human-readable line for the ONNX ``doc_string`` and the command line."""
    p = meta[PREFIX + "p"]
    names = ", ".join(
        f"ω{o['omega_index'] + 1} = {o['name']}" for o in json.loads(meta[PREFIX + "objectives"])
    )
    if meta[PREFIX + "mix"] == "baked":
        return f"tunify network baked at ω = {meta[PREFIX + 'omega.baked']} (p = {p}: {names})"
    return (
        f"tunify network with live ω: input '{meta[PREFIX + 'omega.input']}' of shape "
        f"{meta[PREFIX + 'omega.shape']}, {meta[PREFIX + 'omega.semantics']} ω in {meta[PREFIX + 'omega.range']}, "
        f"mixed by {meta[PREFIX + 'mix']} (p = {p}: {names})"
    )
