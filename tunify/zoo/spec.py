"""`ArchSpec`: a JSON-able record of "which architecture, which hyper-parameters" that rebuilds a network.

The Hub code stores the spec next to tunable weights, so a published checkpoint can be rebuilt from the
base architecture without pickling code. spandrel's model classes record their constructor keywords in
`model.hyperparameters` (its `store_hyperparameters` decorator), which makes the spec exact for them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from .errors import ZooError
from .ffdnet import FFDNet

#: Architecture ids that mean "build with timm" are written `timm:<model name>`.
TIMM_PREFIX = "timm:"
#: Architectures tunify writes itself because spandrel has none: `tunify:<class name>`.
OWN_PREFIX = "tunify:"
OWN_ARCHITECTURES: dict[str, type[nn.Module]] = {"FFDNet": FFDNet}
#: Attribute under which `create`/`load` remember the spec (plain attribute: survives deepcopy and in-place
#: conversion, never enters the state dict).
SPEC_ATTR = "tunify_spec"


@dataclass(frozen=True)
class ArchSpec:
    """Architecture id plus constructor keywords; `build(spec)` makes the same (freshly initialised) network.

    `architecture` is a spandrel architecture id ("SwinIR", "NAFNet", ...), `timm:<name>` or `tunify:<name>`
    (:data:`OWN_ARCHITECTURES`).
    `class_name` is only set when the spandrel class is not named like its architecture (e.g. "KBNet_s").
    `name` is the registered config the network came from, if any (informational).
    """

    architecture: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    class_name: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ValueError("ArchSpec.architecture must be a non-empty string")
        if not isinstance(self.kwargs, dict):
            raise ValueError("ArchSpec.kwargs must be a dict of constructor keywords")
        try:
            json.dumps(self.kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"ArchSpec.kwargs must be JSON-serialisable: {e}") from None

    @property
    def is_timm(self) -> bool:
        return self.architecture.startswith(TIMM_PREFIX)

    @property
    def is_own(self) -> bool:
        return self.architecture.startswith(OWN_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (only the set optional fields), ready for JSON/YAML or safetensors metadata."""
        d: dict[str, Any] = {"architecture": self.architecture, "kwargs": _jsonable(self.kwargs)}
        if self.class_name is not None:
            d["class_name"] = self.class_name
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | ArchSpec) -> ArchSpec:
        if isinstance(d, ArchSpec):
            return d
        if not isinstance(d, dict) or "architecture" not in d:
            raise ValueError(f"an architecture spec is a dict with 'architecture' and 'kwargs', got {d!r}")
        unknown = set(d) - {"architecture", "kwargs", "class_name", "name"}
        if unknown:
            raise ValueError(f"unknown fields in architecture spec: {sorted(unknown)}")
        return cls(d["architecture"], dict(d.get("kwargs") or {}), d.get("class_name"), d.get("name"))


def _jsonable(value: Any) -> Any:
    """Tuples become lists (JSON has no tuples), recursively; everything else is kept."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _is_json_scalar_tree(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_is_json_scalar_tree(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_scalar_tree(v) for k, v in value.items())
    return False


def _spandrel_arch_id(model: nn.Module) -> str | None:
    """spandrel keeps every architecture in `spandrel.architectures.<id>`; the class's module tells the id."""
    parts = type(model).__module__.split(".")
    if len(parts) >= 3 and parts[0] == "spandrel" and parts[1] == "architectures":
        return parts[2]
    return None


def _constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    # spandrel wraps __init__ with functools.wraps, so the signature is the original one.
    return dict(inspect.signature(cls.__init__).parameters)


def _exported_classes(arch: str) -> dict[str, type]:
    """The model classes ``spandrel.architectures.<arch>`` exports, by the name it exports them under."""
    module = importlib.import_module(f"spandrel.architectures.{arch}")
    names = getattr(module, "__all__", None) or list(vars(module))
    found = {name: getattr(module, name, None) for name in names}
    return {name: c for name, c in found.items() if isinstance(c, type) and issubclass(c, nn.Module)}


def _exported_name(cls: type, arch: str) -> str:
    """The name spandrel exports ``cls`` under: ESRGAN's ``RRDBNet`` is ``ESRGAN``, Compact's
    ``SRVGGNetCompact`` is ``Compact``; the architecture's own name when it is one of them."""
    names = [name for name, c in _exported_classes(arch).items() if c is cls]
    return arch if arch in names else next(iter(names), cls.__name__)


def spandrel_spec(model: nn.Module, name: str | None = None) -> ArchSpec:
    """Spec of a spandrel model from its recorded hyper-parameters.

    Keywords that are not JSON values (SwinIR's `norm_layer=nn.LayerNorm`) are left out when they equal the
    constructor default, since `build` then gets the same value back; anything else is an error.
    """
    arch = _spandrel_arch_id(model)
    hp = getattr(model, "hyperparameters", None)
    if arch is None or not isinstance(hp, dict):
        raise ZooError(f"{type(model).__name__} is not a spandrel model with recorded hyper-parameters")
    params = _constructor_parameters(type(model))
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    kwargs: dict[str, Any] = {}
    for k, v in hp.items():
        if k not in params and not takes_any:
            continue  # recorded by spandrel beside the constructor's own (RealCUGAN's scale, fast)
        if _is_json_scalar_tree(v):
            kwargs[k] = _jsonable(v)
        elif k in defaults and defaults[k] is v:
            continue
        else:
            raise ZooError(
                f"{type(model).__name__} hyper-parameter {k}={v!r} is not a JSON value and not the default; "
                "it cannot be recorded in an architecture spec"
            )
    cls_name = _exported_name(type(model), arch)
    return ArchSpec(arch, kwargs, class_name=None if cls_name == arch else cls_name, name=name)


def describe(model: nn.Module) -> dict[str, Any]:
    """`{"architecture", "kwargs", ...}` that `build` turns back into the same network (freshly initialised).

    Works for models from `load`/`create` and for any spandrel model; a timm model is described when it was
    made by `create` (timm does not record its constructor keywords). Accepts a converted model too, by
    looking through `.base_model`.
    """
    base = getattr(model, "base_model", None)
    if isinstance(base, nn.Module) and base is not model:
        model = base
    stored = getattr(model, SPEC_ATTR, None)
    name = stored.get("name") if isinstance(stored, dict) else None
    if _spandrel_arch_id(model) is not None:
        return spandrel_spec(model, name=name).to_dict()
    own = next((k for k, cls in OWN_ARCHITECTURES.items() if type(model) is cls), None)
    if own is not None:  # as it stands: FFDNet's noise_level may have changed since it was built
        return ArchSpec(OWN_PREFIX + own, dict(model.hyperparameters), name=name).to_dict()
    if isinstance(stored, dict):
        return ArchSpec.from_dict(stored).to_dict()
    raise ZooError(
        f"cannot describe a {type(model).__name__}: it is neither a spandrel model nor made by "
        "tunify.zoo.create/load, so its constructor keywords are unknown"
    )


def _spandrel_class(spec: ArchSpec) -> type[nn.Module]:
    try:
        module = importlib.import_module(f"spandrel.architectures.{spec.architecture}")
    except ImportError:
        raise ZooError(
            f"unknown architecture {spec.architecture!r}: not a spandrel architecture and not 'timm:<name>'"
        ) from None
    cls_name = spec.class_name or spec.architecture
    cls = getattr(module, cls_name, None)
    if cls is None:  # a spec naming the class itself (earlier tunify wrote ESRGAN's as RRDBNet)
        cls = next((c for c in _exported_classes(spec.architecture).values() if c.__name__ == cls_name), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        exported = [n for n in getattr(module, "__all__", []) if not n.endswith("Arch")]
        raise ZooError(
            f"spandrel architecture {spec.architecture!r} has no model class {cls_name!r}; "
            f"set class_name to one of {exported}"
        )
    return cls


def check_kwargs(cls: type, kwargs: dict[str, Any], what: str) -> None:
    """Raise a ValueError naming the bad keyword, rather than the TypeError deep inside spandrel."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [k for k in params if k != "self"]
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        raise ValueError(f"{what}: unknown hyper-parameter(s) {bad}; valid ones are {valid}")


def build(spec: dict[str, Any] | ArchSpec) -> nn.Module:
    """Build a freshly initialised network from a spec (in training mode, like any constructor).

    The result remembers its spec, so `describe(build(spec)) == spec` (up to defaults spandrel fills in).
    """
    spec = ArchSpec.from_dict(spec)
    if spec.is_timm:
        import timm

        timm_name = spec.architecture[len(TIMM_PREFIX) :]
        if not timm.is_model(timm_name):
            raise ZooError(f"timm has no model named {timm_name!r}")
        if "pretrained" in spec.kwargs:
            raise ValueError("a spec builds a freshly initialised network; drop 'pretrained' from its kwargs")
        model = timm.create_model(timm_name, pretrained=False, **spec.kwargs)
    elif spec.is_own:
        cls = OWN_ARCHITECTURES.get(spec.architecture[len(OWN_PREFIX) :])
        if cls is None:
            raise ZooError(
                f"tunify has no architecture {spec.architecture!r}; it has {list(OWN_ARCHITECTURES)}"
            )
        check_kwargs(cls, spec.kwargs, spec.architecture)
        model = cls(**spec.kwargs)
    else:
        cls = _spandrel_class(spec)
        check_kwargs(cls, spec.kwargs, spec.architecture)
        model = cls(**spec.kwargs)
    setattr(model, SPEC_ATTR, spec.to_dict())
    return model
