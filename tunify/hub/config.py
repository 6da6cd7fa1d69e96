"""``config.json`` of a saved tunable model: what to rebuild, how it was converted, and what ω means.

Loading never runs code from a repository, so everything needed to rebuild the network is data here: the
base architecture (an :class:`tunify.zoo.ArchSpec` dict: a spandrel architecture, ``timm:<name>`` or
``tunify:<name>``, or ``"custom"``, which needs the user's ``model=``), the conversion spec, and the
descriptive ``info``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import zoo
from .._version import __version__
from ..convert import CheckpointError, TunableModel, conversion_spec
from ..zoo.spec import TIMM_PREFIX

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
CUSTOM = "custom"

#: Keys of ``TunableModel.info`` and what they hold (all optional; anything else is kept as is).
INFO_SCHEMA: dict[str, str] = {
    "task": "str: e.g. 'denoising', 'super-resolution', 'image-classification'",
    "objectives": "list of {'name': str, 'omega_index': int, 'description': str} (name or description), one per ω_i",
    "metrics": "dict: evaluation results, e.g. {'Kodak24 σ=25': {'ω=(1, 0)': {'psnr': 32.1}}}",
    "training": "dict: how it was trained (data, steps, degradations, ...)",
    "license": "str: SPDX id of the weights' licence, e.g. 'apache-2.0'",
    "base_model": "str: Hub id of the original (untunable) weights",
    "init": "str: the checkpoint the tunable copies started from (file or zoo name), when not a Hub id",
    "tags": "list of str: extra model-card tags",
    "description": "str: one paragraph for the model card",
    "note": "str: a caveat shown first on the card and by tunify info (e.g. a smoke run: not a result)",
}


class HubError(CheckpointError):
    """A saved or published tunable model that cannot be read, rebuilt or loaded; the message names the file."""


def validate_info(info: dict[str, Any], where: str = "info") -> dict[str, Any]:
    """Check the known ``info`` fields (raising ValueError naming the field) and that all is JSON-able."""
    if not isinstance(info, dict):
        raise ValueError(f"{where} must be a dict, got {type(info).__name__}")
    for key in ("task", "license", "base_model", "init", "description", "note"):
        if key in info and info[key] is not None and not isinstance(info[key], str):
            raise ValueError(f"{where}['{key}'] must be a string, got {info[key]!r}")
    for key in ("metrics", "training"):
        if key in info and not isinstance(info[key], dict):
            raise ValueError(f"{where}['{key}'] must be a dict, got {type(info[key]).__name__}")
    if "tags" in info and not (
        isinstance(info["tags"], list) and all(isinstance(t, str) for t in info["tags"])
    ):
        raise ValueError(f"{where}['tags'] must be a list of strings, got {info['tags']!r}")
    objectives = info.get("objectives", [])
    if not isinstance(objectives, list):
        raise ValueError(f"{where}['objectives'] must be a list, got {type(objectives).__name__}")
    for i, obj in enumerate(objectives):
        texts = [obj.get(k) for k in ("name", "description")] if isinstance(obj, dict) else []
        if not (texts and any(isinstance(t, str) and t for t in texts)) or any(
            t is not None and not isinstance(t, str) for t in texts
        ):
            raise ValueError(
                f"{where}['objectives'][{i}] must be a dict with a string 'name' or 'description', got {obj!r}"
            )
        index = obj.get("omega_index", i)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(
                f"{where}['objectives'][{i}]['omega_index'] must be an integer >= 0, got {index!r}"
            )
    try:
        json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} must be JSON-serialisable: {error}") from None
    return info


def describe_base(model: nn.Module) -> dict[str, Any]:
    """The base network as data: the zoo spec, a timm name, or ``{"architecture": "custom", ...}``."""
    try:
        return zoo.describe(model)
    except zoo.ZooError:
        pass
    cfg = getattr(model, "pretrained_cfg", None)
    name = cfg.get("architecture") if isinstance(cfg, dict) else None
    if name:  # a timm model made with timm.create_model, which records none of its keywords
        return {"architecture": f"{TIMM_PREFIX}{name}", "kwargs": _timm_keywords(model, name)}
    cls = type(model)
    return {"architecture": CUSTOM, "class": f"{cls.__module__}.{cls.__qualname__}"}


def _timm_keywords(model: nn.Module, name: str) -> dict[str, Any]:
    """The usual ``timm.create_model`` keywords, read back from the network where they differ from the
    default build (made on the meta device: no memory, no weights): ``num_classes``, ``in_chans`` (the
    first convolution's input channels) and a patch embedding's ``img_size`` / ``patch_size``. Others stay
    unknown; ``from_pretrained`` then says to pass ``model=``."""
    import timm

    kwargs: dict[str, Any] = {}
    if isinstance(getattr(model, "num_classes", None), int):
        kwargs["num_classes"] = model.num_classes
    try:
        with torch.device("meta"):
            default = timm.create_model(name, pretrained=False, **kwargs)
    except Exception:  # a timm model that will not build by name: keep what is known
        return kwargs
    first = model.pretrained_cfg.get("first_conv")
    if isinstance(first, str):
        channels = [getattr(_submodule(m, first), "in_channels", None) for m in (model, default)]
        if channels[0] != channels[1] and isinstance(channels[0], int):
            kwargs["in_chans"] = channels[0]
    for key in ("img_size", "patch_size"):
        values = [getattr(_submodule(m, "patch_embed"), key, None) for m in (model, default)]
        if values[0] != values[1] and values[0] is not None:
            kwargs[key] = list(values[0]) if isinstance(values[0], tuple) else values[0]
    return kwargs


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


OmegaEffect = str | tuple[str, str]


def objectives_from_effects(effects: Sequence[OmegaEffect], p: int) -> list[dict[str, Any]]:
    """``info['objectives']`` from one entry per ω_i: what moving ω_i to 1 does, or a (name, effect) pair."""
    if isinstance(effects, str) or len(effects) != p:
        raise ValueError(
            f"omega_effects needs one entry per ω_i (p = {p}): e.g. ['denoising strength', 'noise kept'], "
            f"got {effects!r}"
        )
    objectives = []
    for i, effect in enumerate(effects):
        if isinstance(effect, str) and effect.strip():
            objectives.append({"omega_index": i, "description": effect.strip()})
        elif (
            isinstance(effect, tuple | list)
            and len(effect) == 2
            and all(isinstance(t, str) and t.strip() for t in effect)
        ):
            objectives.append({"name": effect[0].strip(), "omega_index": i, "description": effect[1].strip()})
        else:
            raise ValueError(
                f"omega_effects[{i}] must be a non-empty string or a (name, description) pair, got {effect!r}"
            )
    return objectives


def build_config(tmodel: TunableModel, omega_effects: Sequence[OmegaEffect] | None = None) -> dict[str, Any]:
    """The ``config.json`` content of ``tmodel``; ``omega_effects`` replaces ``info['objectives']``."""
    info = dict(tmodel.info)
    if omega_effects is not None:
        info["objectives"] = objectives_from_effects(omega_effects, tmodel.p)
    info = validate_info(info, "TunableModel.info")
    return {
        "library": "tunify",
        "format_version": FORMAT_VERSION,
        "tunify_version": __version__,
        "p": tmodel.p,
        "base": describe_base(tmodel.base_model),
        "conversion": conversion_spec(tmodel),
        "info": info,
    }


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def parse_config(text: str, source: str) -> dict[str, Any]:
    """Validate a ``config.json`` text; every problem is a :class:`HubError` naming ``source`` and the key."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise HubError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise HubError(f"{source}: expected a JSON object, got {type(config).__name__}")
    missing = [k for k in ("tunify_version", "p", "base", "conversion") if k not in config]
    if missing:
        raise HubError(f"{source}: missing key(s) {missing} (not a tunify config.json?)")
    p = config["p"]
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise HubError(f"{source}: 'p' must be an integer >= 1, got {p!r}")
    base = config["base"]
    if not (isinstance(base, dict) and isinstance(base.get("architecture"), str)):
        raise HubError(f"{source}: 'base' must be an object with a string 'architecture', got {base!r}")
    conversion = config["conversion"]
    if not isinstance(conversion, dict) or not {"p", "layers", "tensors"} <= set(conversion):
        raise HubError(f"{source}: 'conversion' must be an object with 'p', 'layers' and 'tensors'")
    if conversion["p"] != p:
        raise HubError(f"{source}: 'p' is {p} but 'conversion.p' is {conversion['p']!r}")
    try:
        validate_info(config.setdefault("info", {}), "'info'")
    except ValueError as error:
        raise HubError(f"{source}: {error}") from None
    unknown = sorted(
        set(config) - {"library", "format_version", "tunify_version", "p", "base", "conversion", "info"}
    )
    if unknown:
        warnings.warn(f"{source}: ignoring unknown key(s) {unknown}", stacklevel=3)
    if _version_tuple(str(config["tunify_version"])) > _version_tuple(__version__):
        warnings.warn(
            f"{source} was written by tunify {config['tunify_version']}, newer than this tunify {__version__}; "
            "upgrade if loading fails",
            stacklevel=3,
        )
    return config


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a local ``config.json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HubError(f"{path}: no such file (not a tunify model folder?)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise HubError(f"{path}: cannot read ({error})") from None
    return parse_config(text, str(path))


def rebuild_base(config: dict[str, Any], source: str) -> nn.Module:
    """A freshly initialised base network from ``config['base']`` (zoo or timm); custom ones need ``model=``."""
    base = config["base"]
    if base["architecture"] == CUSTOM:
        raise HubError(
            f"{source}: the model was saved from a custom network ({base.get('class', 'unknown class')}); "
            "build that network and pass it as model="
        )
    try:
        return zoo.build(
            {k: v for k, v in base.items() if k in ("architecture", "kwargs", "class_name", "name")}
        )
    except (zoo.ZooError, ValueError, TypeError) as error:
        raise HubError(
            f"{source}: cannot rebuild the base network {base['architecture']!r}: {error}"
        ) from None
