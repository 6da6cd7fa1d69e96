"""The options of :func:`tunify.convert`, gathered so a conversion can be saved and replayed."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

TargetSpec = str | Sequence[str] | None
"""A regex that must match the whole name, or a list of names or name suffixes (``"qkv"`` matches ``a.qkv``)."""


def matches(name: str, spec: TargetSpec) -> bool:
    """Whether a full module or parameter name is selected by ``spec`` (PEFT's convention)."""
    if spec is None:
        return False
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    return any(name == entry or name.endswith("." + entry) for entry in spec)


@dataclass
class ConvertConfig:
    """What to make tunable and how.

    Args:
        p: number of tunable parameters (the length of ω).
        include: layers to convert, by full-name regex or list of suffixes; None means every supported layer.
        exclude: layers to leave alone, by the same rules; applied after ``include``.
        layer_types: only convert layers that are instances of these types (e.g. ``(nn.Conv2d,)``).
        filter_fn: ``filter_fn(module, name) -> bool``, a last say on each layer (not saved with the model).
        parameters: plain tensors to make tunable (NAFNet's ``beta``/``gamma``), by regex or suffix list.
        functional: also convert modules that pass their own parameters to ``F.conv*``/``F.linear``.
        allow_extrapolation: accept ω outside [0, 1].
        independent: the ω entries are independent knobs on [0, 1]^p (e.g. noise kept and sharpening), not
            the weights of a trade-off: every tensor gets p + 1 copies, a base one and one per entry, so that
            each corner of the cube is a different network (ω and ω + c·1 coincide with p copies).
        batch_dim: the dimension of the model's first input that holds the batch (1 for sequence-first).
        strategy: how a layer becomes tunable (``tunify.strategies``): ``"kernels"`` (p full copies, the
            paper's tunable convolutions), ``"lowrank"``, ``"atoms"``, ``"adafm"`` or ``"ftn"``.
        strategy_options: the strategy's options (e.g. ``{"rank": 8}``); completed with its defaults by
            the conversion, so a saved spec records every value.
    """

    p: int
    include: TargetSpec = None
    exclude: TargetSpec = None
    layer_types: tuple[type[nn.Module], ...] | None = None
    filter_fn: Callable[[nn.Module, str], bool] | None = field(default=None, repr=False)
    parameters: TargetSpec = None
    functional: bool = True
    allow_extrapolation: bool = False
    independent: bool = False
    batch_dim: int = 0
    strategy: str = "kernels"
    strategy_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or isinstance(self.p, bool) or self.p < 1:
            raise ValueError(f"p (the number of tunable parameters) must be an integer >= 1, got {self.p!r}")
        for name in ("include", "exclude", "parameters"):
            spec = getattr(self, name)
            if isinstance(spec, str):
                try:
                    re.compile(spec)
                except re.error as error:
                    raise ValueError(f"{name} is not a valid regular expression: {error}") from None
            elif spec is not None and not all(isinstance(s, str) for s in spec):
                raise ValueError(f"{name} must be a regex string or a list of name suffixes, got {spec!r}")
        if self.layer_types is not None:
            self.layer_types = tuple(self.layer_types)
        if self.batch_dim < 0:
            raise ValueError(f"batch_dim must be >= 0, got {self.batch_dim}")

    @property
    def kernels(self) -> int:
        """Copies of each tunable tensor: p, or p + 1 with independent ω entries."""
        return self.p + 1 if self.independent else self.p

    def selects(self, module: nn.Module, name: str) -> bool:
        """Whether a supported layer passes include, exclude, layer_types and filter_fn."""
        if self.layer_types is not None and not isinstance(module, self.layer_types):
            return False
        return self.selects_module(module, name)

    def selects_module(self, module: nn.Module, name: str) -> bool:
        """Whether a module calling F.conv*/F.linear on its parameters passes include, exclude and filter_fn."""
        if self.include is not None and not matches(name, self.include):
            return False
        if matches(name, self.exclude):
            return False
        return self.filter_fn is None or bool(self.filter_fn(module, name))
