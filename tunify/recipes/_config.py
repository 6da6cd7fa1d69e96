"""Recipe configs: YAML files plus ``key.sub=value`` overrides, checked against the file's own keys and types.

A recipe's YAML is the single source of its hyper-parameters; the command line may change any key but not
invent one, so a typo (``train.lrr=1e-3``) fails loudly with the close keys instead of being ignored.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

#: The recipe configs: ``recipes/`` at the repository root, shipped in the package through the
#: ``configs`` link (so ``python -m tunify.recipes.<name>`` finds them in an installed wheel too).
RECIPES_DIR = Path(__file__).parent / "configs"
PRESETS_KEY = "presets"


class ConfigError(ValueError):
    """A recipe config or override is invalid; the message names the key."""


def config_path(name: str) -> Path:
    """The default config of recipe ``name`` (``recipes/<name>.yaml``)."""
    return RECIPES_DIR / f"{name}.yaml"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a plain dict (top level must be a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe config not found: {path} (pass --config PATH)")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every addressable dotted key (mappings and list indices), for error messages and ``--help``."""
    keys: list[str] = []
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(cfg, Mapping):
        items = cfg.items()
    elif isinstance(cfg, list):
        items = enumerate(cfg)
    for key, value in items:
        full = f"{prefix}{key}"
        keys.append(full)
        keys.extend(flat_keys(value, full + "."))
    return keys


def parse_value(text: str) -> Any:
    """A command-line value read as YAML, so ``3``, ``1.0e-4``, ``[5, 30]``, ``true`` and ``null`` work."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse value {text!r}: {e}") from None


def _coerce(key: str, old: Any, new: Any) -> Any:
    """``new`` if it has ``old``'s type (ints widen to floats); None is accepted anywhere (switches off)."""
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, float):
        if isinstance(new, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(new)
            except ValueError:
                pass
        elif isinstance(new, int | float) and not isinstance(new, bool):
            return float(new)
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
        if isinstance(new, float) and new.is_integer():
            return int(new)
    elif isinstance(old, list | tuple):
        if isinstance(new, list | tuple):
            return list(new)
    elif isinstance(old, type(new)) or isinstance(new, type(old)):
        return new
    raise ConfigError(
        f"config key {key!r} expects a {type(old).__name__} (default {old!r}), got {type(new).__name__} {new!r}"
    )


def _unknown(key: str, cfg: Mapping[str, Any]) -> ConfigError:
    keys = [k for k in flat_keys(cfg) if not k.startswith(PRESETS_KEY)]
    close = difflib.get_close_matches(key, keys, n=5, cutoff=0.6)
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = [k for k in keys if parent and k.startswith(parent + ".") and k.count(".") == key.count(".")]
    hint = close or siblings[:10]
    listing = f" Close keys: {', '.join(hint)}." if hint else f" Top-level keys: {', '.join(sorted(cfg))}."
    return ConfigError(f"unknown config key {key!r}.{listing}")


def set_key(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in place, type-checked against the value it replaces; the key must exist."""
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict) and part in node:
            if last:
                node[part] = _coerce(key, node[part], value)
            else:
                node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            if last:
                node[int(part)] = _coerce(key, node[int(part)], value)
            else:
                node = node[int(part)]
        else:
            raise _unknown(key, cfg)


def apply_overrides(cfg: Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with ``["a.b=1", ...]`` (strings parsed as YAML) or ``{"a.b": 1}`` applied in order."""
    out = copy.deepcopy(dict(cfg))
    pairs: Iterable[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        pairs = overrides.items()
    else:
        pairs = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key.sub=value")
            key, text = item.split("=", 1)
            pairs.append((key.strip(), parse_value(text)))
    for key, value in pairs:
        set_key(out, key, value)
    return out


def apply_preset(cfg: Mapping[str, Any], preset: str | None) -> dict[str, Any]:
    """``cfg`` with the dotted overrides of ``presets.<preset>`` applied; the ``presets`` table is dropped."""
    presets = dict(cfg.get(PRESETS_KEY) or {})
    base = {k: v for k, v in cfg.items() if k != PRESETS_KEY}
    if preset in (None, "full"):
        return copy.deepcopy(base)
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; this recipe has: full, {', '.join(sorted(presets))}")
    return apply_overrides(base, presets[preset] or {})
