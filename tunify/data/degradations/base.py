"""Shared pieces of the degradations: the callable protocol, parameter ranges and the name registry.

Degradations are pure functions of (clean batch, generator): the same seed gives the same degraded batch, which
is what makes evaluation reproducible and lets objectives read back the drawn parameters (σ, ρ).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar

import torch

Params = dict[str, torch.Tensor]  # per-sample parameters: [B] values, or [B, C, H, W] (the added noise)

_REGISTRY: dict[str, Callable[..., Degradation]] = {}


class Degradation:
    """Base of the degradation objects: `deg(clean, generator=g) -> (degraded, params)`.

    `clean` is a float batch (B, 3, H, W); `params` maps parameter names ("sigma", "rho", "scale") to per-sample
    tensors of shape [B]. Subclasses are dataclasses, so `to_config()` gives back the dict that builds them.
    """

    name: ClassVar[str] = ""

    def __call__(
        self, clean: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Params]:
        if clean.ndim != 4:
            raise ValueError(f"{self.name}: expected a batch (B, C, H, W), got shape {tuple(clean.shape)}")
        return self.apply(clean, generator)

    def apply(self, clean: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """The config dict that `build_degradation` turns back into this object."""
        cfg = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}

    def __str__(self) -> str:
        cfg = self.to_config()
        args = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "name")
        return f"{cfg['name']}({args})"


def register_degradation(name: str) -> Callable[[Callable[..., Degradation]], Callable[..., Degradation]]:
    """Decorator: make a degradation class (or factory) constructible by name from a config dict."""

    def deco(cls: Callable[..., Degradation]) -> Callable[..., Degradation]:
        if name in _REGISTRY:
            raise ValueError(f"degradation {name!r} is already registered")
        _REGISTRY[name] = cls
        return cls

    return deco


def degradation_names() -> list[str]:
    """Names accepted by `build_degradation`."""
    return sorted(_REGISTRY)


def build_degradation(config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Degradation) -> Degradation:
    """Build a degradation from a recipe config, e.g. `{"name": "noise", "sigma": [5, 30]}`.

    A list of configs builds a chain applied in order; a `Degradation` passes through unchanged.
    """
    if isinstance(config, Degradation):
        return config
    if isinstance(config, Sequence) and not isinstance(config, str | bytes):
        return _REGISTRY["chain"](steps=[build_degradation(c) for c in config])
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"degradation config must be a mapping with a 'name' key, got {config!r}")
    kwargs = dict(config)
    name = kwargs.pop("name")
    if name not in _REGISTRY:
        raise ValueError(f"unknown degradation {name!r}; known: {degradation_names()}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"bad options for degradation {name!r}: {e}") from e


def as_range(value: float | Sequence[float], field: str, *, low: float = 0.0) -> tuple[float, float]:
    """Normalise a fixed value or a [lo, hi] pair to a (lo, hi) tuple, raising ValueError naming `field`."""
    if isinstance(value, int | float):
        lo = hi = float(value)
    elif isinstance(value, Sequence) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{field} must be a number or a [low, high] pair, got {value!r}")
    if not low <= lo <= hi:
        raise ValueError(f"{field} must satisfy {low} <= low <= high, got {value!r}")
    return lo, hi


def draw_uniform(
    bounds: tuple[float, float], n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """One value per sample, uniform in `bounds`; a fixed value draws nothing, so it leaves the RNG untouched."""
    lo, hi = bounds
    if lo == hi:
        return torch.full((n,), lo, device=device)
    u = torch.rand(n, generator=generator, device=_rng_device(generator, device))
    return (lo + (hi - lo) * u).to(device)


def _rng_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Draw on the generator's device (a CPU generator cannot fill CUDA tensors); the result is moved after."""
    return generator.device if generator is not None else device


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like `x`, drawn on the generator's device, returned on x's device."""
    dev = _rng_device(generator, x.device)
    return torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
