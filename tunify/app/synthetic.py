"""A synthetic degradation to try a model without a degraded photo: the one its recipe trained on.

The recipe's degradation (``info.training.degradation`` of ``config.json``: noise for denoisers, blur + noise
for deblurring models, bicubic downsampling for super-resolution) is rebuilt with each drawn range replaced
by a level the person picks (σ, ρ); models without one get Gaussian noise. The noise is drawn with a fixed
seed, so moving an ω slider never redraws it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import Degradation, build_degradation

#: The level parameters a person can set: label, largest slider value, preferred default.
LEVELS = {
    "sigma": ("noise σ (0-255 units)", 75.0, 25.0),
    "rho": ("blur ρ (Gaussian std, pixels)", 6.0, 2.0),
}
FALLBACK = {"name": "noise", "sigma": [0.0, 75.0]}
SEED = 0


@dataclass(frozen=True)
class Knob:
    """One level slider of the degradation."""

    key: str
    label: str
    maximum: float
    value: float


def _fields(config: Any) -> Iterator[dict[str, Any]]:
    """Every degradation dict of a config (one dict, a list, or a chain's steps)."""
    if isinstance(config, dict):
        yield config
        yield from _fields(config.get("steps"))
    elif isinstance(config, list):
        for item in config:
            yield from _fields(item)


@dataclass(frozen=True)
class SyntheticDegradation:
    """The degradation to offer for a model, with its level knobs."""

    config: Any  # the recipe's degradation config (dict or list), levels still as trained
    knobs: tuple[Knob, ...]
    scale: int  # 1, or the downsampling factor of a super-resolution recipe

    @classmethod
    def from_config(cls, config: dict[str, Any], model_scale: int = 1) -> SyntheticDegradation:
        """From a model's ``config.json`` dict. Where the recipe recorded no degradation (or one the network's
        upscaling ``model_scale`` contradicts): noise, or bicubic downsampling by the model's scale."""
        recipe = config.get("info", {}).get("training", {}).get("degradation") or FALLBACK
        try:
            build_degradation(recipe)
        except (ValueError, TypeError):  # written by a newer tunify, or by hand
            recipe = FALLBACK
        if _scale(recipe) != model_scale:
            recipe = FALLBACK if model_scale == 1 else {"name": "downsample", "scale": model_scale}
        knobs: dict[str, Knob] = {}
        for step in _fields(recipe):
            for key, (label, maximum, preferred) in LEVELS.items():
                if key in step and key not in knobs:
                    lo, hi = _range(step[key])
                    knobs[key] = Knob(key, label, max(maximum, hi), min(max(preferred, lo), hi))
        return cls(recipe, tuple(knobs.values()), model_scale)

    def describe(self, levels: Sequence[float]) -> str:
        """The degradation at ``levels``, e.g. ``noise(sigma=25.0, clip=False)`` (for the PNG metadata)."""
        return str(self.build(levels))

    @property
    def kind(self) -> str:
        """What the recipe degrades with, for the page: ``noise``, ``blur + noise``, ``downsample ×4``."""
        names = []
        for step in _fields(self.config):
            name = {"blur_noise": "blur + noise", "downsample": f"downsample ×{step.get('scale', '?')}"}.get(
                step["name"], step["name"]
            )
            if name != "chain":
                names.append(name)
        return " + ".join(names)

    def build(self, levels: Sequence[float]) -> Degradation:
        """The degradation with every level fixed to ``levels`` (one per knob, in order)."""
        if len(levels) != len(self.knobs):
            raise ValueError(f"expected {len(self.knobs)} degradation level(s), got {len(levels)}")
        chosen = {}
        for knob, level in zip(self.knobs, levels, strict=True):
            value = float(level)
            if not 0.0 <= value <= knob.maximum:
                raise ValueError(f"{knob.label} must lie in [0, {knob.maximum:g}], got {level!r}")
            chosen[knob.key] = value
        config = copy.deepcopy(self.config)
        for step in _fields(config):
            for key, value in chosen.items():
                if key in step:
                    step[key] = value
        return build_degradation(config)

    def crop(self, clean: torch.Tensor) -> torch.Tensor:
        """``clean`` cropped to a multiple of the downsampling factor, so input and output pixels line up."""
        h, w = clean.shape[-2:]
        return clean[..., : h - h % self.scale, : w - w % self.scale]

    def apply(self, clean: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
        """``clean`` (B, 3, H, W), cropped by :meth:`crop`, degraded at ``levels``; the same every call."""
        generator = torch.Generator(device=clean.device).manual_seed(SEED)
        degraded, _ = self.build(levels)(self.crop(clean), generator)
        return degraded


def _scale(recipe: Any) -> int:
    """The downsampling factor of a degradation config (1 without one)."""
    scale = 1
    for step in _fields(recipe):
        if step.get("name") == "downsample":
            scale *= int(step.get("scale", 1))
    return scale


def _range(value: Any) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), float(value)
    lo, hi = value
    return float(lo), float(hi)
