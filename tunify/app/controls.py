"""The ω sliders of a model, read from its ``config.json``: how many, what each is labelled, how they move.

A trade-off model (trained with ω on the simplex, ``independent`` false) has one degree of freedom fewer than
it has entries: p = 2 is a single slider t with ω = (1 − t, t), and p ≥ 3 shows p sliders that are kept
summing to one (moving one rescales the others). A model converted with ``independent=True`` has free
entries, one free slider each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["trade-off", "simplex", "independent"]


@dataclass(frozen=True)
class Slider:
    """One slider on the page."""

    label: str
    info: str
    value: float


@dataclass(frozen=True)
class OmegaControls:
    """How the sliders of a model with ``p`` entries map to ω."""

    p: int
    mode: Mode
    names: tuple[str, ...]  # one per ω_i
    descriptions: tuple[str, ...]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OmegaControls:
        """From a ``config.json`` dict (``p``, ``conversion.independent``, ``info.objectives``)."""
        p = int(config["p"])
        independent = bool(config.get("conversion", {}).get("independent", False))
        mode: Mode = "independent" if independent or p == 1 else "trade-off" if p == 2 else "simplex"
        objectives = {
            obj.get("omega_index", i): obj
            for i, obj in enumerate(config.get("info", {}).get("objectives", []))
        }
        names = tuple(str(objectives.get(i, {}).get("name", f"objective {i + 1}")) for i in range(p))
        descriptions = tuple(str(objectives.get(i, {}).get("description", "")) for i in range(p))
        return cls(p, mode, names, descriptions)

    def sliders(self, omega: Sequence[float] | None = None) -> list[Slider]:
        """The sliders to show, set to ``omega`` (default: the centre of the range)."""
        omega = list(omega) if omega is not None else self.default_omega()
        if self.mode == "trade-off":
            label = f"ω: {self.names[0]} ↔ {self.names[1]}"
            info = (
                f"left, ω = (1, 0): {self.descriptions[0] or self.names[0]}; "
                f"right, ω = (0, 1): {self.descriptions[1] or self.names[1]}"
            )
            return [Slider(label, info, omega[1])]
        return [Slider(f"ω{i + 1}: {self.names[i]}", self.descriptions[i], omega[i]) for i in range(self.p)]

    def default_omega(self) -> list[float]:
        if self.mode == "independent":
            return [0.5] * self.p
        return [1.0 / self.p] * self.p

    def check(self, values: Sequence[float]) -> list[float]:
        """Slider values as floats, raising ValueError naming the slider when one is not a number in [0, 1]."""
        labels = [s.label for s in self.sliders()]
        if len(values) != len(labels):
            raise ValueError(f"expected {len(labels)} slider value(s), got {len(values)}")
        out = []
        for label, value in zip(labels, values, strict=True):
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{label} must be a number, got {value!r}") from None
            if not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{label} must lie in [0, 1], got {value!r}")
            out.append(v)
        return out

    def omega(self, values: Sequence[float]) -> list[float]:
        """ω from the slider values (checked; a simplex model's values are normalised to sum to one)."""
        v = self.check(values)
        if self.mode == "trade-off":
            return [1.0 - v[0], v[0]]
        if self.mode == "simplex":
            total = sum(v)
            return [1.0 / self.p] * self.p if total == 0 else [x / total for x in v]
        return v

    def rebalance(self, values: Sequence[float], moved: int) -> list[float]:
        """Simplex sliders after slider ``moved`` was set: the others rescaled so that all sum to one.

        The others keep their proportions; when they are all zero they share what is left equally.
        """
        v = self.check(values)
        if self.mode != "simplex":
            return v
        rest = [i for i in range(self.p) if i != moved]
        left = 1.0 - v[moved]
        total = sum(v[i] for i in rest)
        for i in rest:
            v[i] = left * (v[i] / total if total > 0 else 1.0 / len(rest))
        return v

    def values_for(self, omega: Sequence[float]) -> list[float]:
        """The slider values that give ``omega``; a trade-off or simplex ω must sum to one."""
        omega = [float(w) for w in omega]
        if len(omega) != self.p:
            raise ValueError(f"ω needs {self.p} values, got {len(omega)}")
        if self.mode != "independent" and abs(sum(omega) - 1.0) > 1e-3:
            raise ValueError(
                f"this model's ω lies on the simplex (its {self.p} entries sum to 1), got {self.format(omega)}"
            )
        return self.check([omega[1]] if self.mode == "trade-off" else omega)

    def format(self, omega: Sequence[float]) -> str:
        """``0.7,0.3``: the form ``tunify apply --omega`` and the typed field take."""
        return ",".join(f"{w:.4g}" for w in omega)
