"""Degradations applied in sequence (blur then noise, downsample then noise, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tunify.data.degradations.base import Degradation, Params, build_degradation, register_degradation
from tunify.data.degradations.blur import GaussianBlur
from tunify.data.degradations.noise import GaussianNoise


@register_degradation("chain")
@dataclass
class Chain(Degradation):
    """Apply `steps` in order with one generator; the drawn parameters of all steps are merged."""

    name = "chain"
    steps: Sequence[Degradation | Mapping[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps must hold at least one degradation")
        self.steps = [build_degradation(s) for s in self.steps]

    def apply(self, clean: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        out, params = clean, {}
        for step in self.steps:
            out, p = step(out, generator)
            params.update(p)
        return out, params

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_config() for s in self.steps]}

    def __str__(self) -> str:
        return " -> ".join(str(s) for s in self.steps)


@register_degradation("blur_noise")
def blur_noise(
    rho: float | Sequence[float] = 2.0,
    sigma: float | Sequence[float] = 25.0,
    *,
    kernel_size: int = 21,
    padding: str = "reflect",
    clip: bool = False,
    sharp_prob: float = 0.0,
) -> Chain:
    """Blur with ρ, then add noise with σ (the usual deblurring degradation); ``sharp_prob`` of the samples
    are not blurred (see :class:`GaussianBlur`)."""
    return Chain(
        steps=[
            GaussianBlur(rho=rho, kernel_size=kernel_size, padding=padding, sharp_prob=sharp_prob),
            GaussianNoise(sigma=sigma, clip=clip),
        ]
    )
