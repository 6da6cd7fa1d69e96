"""The parametric multi-loss L = Σ_i ω_i λ_i L_i of Maggioni et al. (CVPR 2023, Eq. 5).

The same ω that tunes the network weights its objectives, so training at ω teaches the network to produce
the output that objective mix prefers. ω may differ per sample: each sample's losses are weighted by its own
row of ω before the batch mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .base import Batch, Objective, build_objective

ObjectiveSpec = Objective | str | Mapping[str, Any]


class LossResult(NamedTuple):
    """``loss``: scalar to backpropagate; ``terms``: detached batch means for logging.

    ``terms[name]`` is the unweighted mean of objective ``name``; composite objectives add ``name/sub``.
    """

    loss: Tensor
    terms: dict[str, Tensor]


def expand_omega(omega: Tensor, batch_size: int, num_params: int) -> Tensor:
    """Check ω and return it as (B, p): a shared (p,) ω is expanded over the batch."""
    if not isinstance(omega, Tensor) or not omega.is_floating_point():
        raise ValueError(
            f"omega must be a float tensor, got {type(omega).__name__} {getattr(omega, 'dtype', '')}"
        )
    if omega.dim() == 1:
        omega = omega.unsqueeze(0).expand(batch_size, -1)
    if omega.dim() != 2 or omega.shape != (batch_size, num_params):
        raise ValueError(
            f"omega must have shape ({num_params},) or ({batch_size}, {num_params}) "
            f"for batch size {batch_size} and p={num_params}, got {tuple(omega.shape)}"
        )
    return omega


def _as_objective(spec: ObjectiveSpec) -> Objective:
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        return build_objective(spec)
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(f"objective mapping needs a 'name' key, got keys {sorted(spec)}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return build_objective(spec["name"], **kwargs)
    raise ValueError(
        f"objective must be an Objective, a name or a mapping with 'name', got {type(spec).__name__}"
    )


class ParametricMultiLoss(nn.Module):
    """L = mean_b Σ_i w_{b,i} λ_i L_i(b), with w_{b,i} = ω[b, weight_by[i]] (or 1 when that entry is None).

    Args:
        objectives: ``Objective`` instances, registered names, or ``{"name": ..., **kwargs}`` mappings.
        weights: λ_i, one per objective (default all 1).
        num_params: p, the width of ω (default: the number of objectives).
        weight_by: per objective, the ω index that weights it, or None for a constant weight; default
            objective i is weighted by ω_i. Use None for a single ω-dependent objective, e.g. the joint
            noise+blur setting: ``ParametricMultiLoss([UnsharpMask(omega_index=1, noise_omega_index=0)],
            num_params=2, weight_by=[None])``. Objectives whose target depends on ω read this index by
            default (their own position i when it is None).

    Example:
        >>> loss_fn = ParametricMultiLoss(["reconstruction", "noise_preservation"])
        >>> loss, terms = loss_fn(output, {"clean": y, "input": z}, omega)  # omega (B, 2) or (2,)
    """

    def __init__(
        self,
        objectives: Sequence[ObjectiveSpec],
        weights: Sequence[float] | None = None,
        *,
        num_params: int | None = None,
        weight_by: Sequence[int | None] | None = None,
    ) -> None:
        super().__init__()
        if len(objectives) == 0:
            raise ValueError("objectives must not be empty")
        n = len(objectives)
        weights = [1.0] * n if weights is None else [float(w) for w in weights]
        if len(weights) != n:
            raise ValueError(f"weights (λ) has {len(weights)} entries for {n} objectives")
        self.num_params = n if num_params is None else num_params
        self.weight_by = list(range(n)) if weight_by is None else list(weight_by)
        if len(self.weight_by) != n:
            raise ValueError(f"weight_by has {len(self.weight_by)} entries for {n} objectives")
        bad = [k for k in self.weight_by if k is not None and not 0 <= k < self.num_params]
        if bad:
            raise ValueError(f"weight_by indices {bad} out of range for num_params={self.num_params}")
        self.objectives = nn.ModuleList(_as_objective(spec) for spec in objectives)
        self.weights = weights
        self.names = self._unique_names()

    def _unique_names(self) -> list[str]:
        names: list[str] = []
        for obj in self.objectives:
            name, i = obj.name, 1
            while name in names:
                name, i = f"{obj.name}_{i}", i + 1
            names.append(name)
        return names

    def forward(self, output: Tensor, batch: Batch, omega: Tensor) -> LossResult:
        """Per-sample weighted sum of the objectives, averaged over the batch."""
        omega = expand_omega(omega, output.shape[0], self.num_params).to(output.dtype)  # [B, p]
        total = output.new_zeros(output.shape[0])  # [B]
        terms: dict[str, Tensor] = {}
        columns = zip(self.names, self.objectives, self.weights, self.weight_by, strict=True)
        for i, (name, obj, lam, k) in enumerate(columns):
            per_sample = obj(output, batch, omega, i if k is None else k)  # [B]
            if per_sample.shape != (output.shape[0],):
                raise ValueError(
                    f"objective {name!r} returned shape {tuple(per_sample.shape)}, expected (B,)"
                )
            weight = lam if k is None else lam * omega[:, k]
            total = total + weight * per_sample
            terms[name] = per_sample.detach().mean()
            terms.update({f"{name}/{sub}": value for sub, value in obj.last_terms.items()})
        return LossResult(total.mean(), terms)

    def _adversarial(self) -> list[Objective]:
        return [obj for obj in self.objectives if hasattr(obj, "discriminator_step_loss")]

    @property
    def has_discriminator(self) -> bool:
        """Whether a trainer must also step a discriminator (see ``discriminator_step_loss``)."""
        return bool(self._adversarial())

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters for the discriminator optimiser; keep them out of the model's optimiser."""
        for obj in self._adversarial():
            yield from obj.discriminator.parameters()

    def discriminator_step_loss(self, output: Tensor, batch: Batch) -> Tensor:
        """Sum of the adversarial objectives' discriminator losses; ``output`` is detached inside."""
        losses = [obj.discriminator_step_loss(output, batch) for obj in self._adversarial()]
        if not losses:
            raise ValueError("no objective of this multi-loss has a discriminator")
        return torch.stack(losses).sum()

    def extra_repr(self) -> str:
        return f"num_params={self.num_params}, weights={self.weights}, weight_by={self.weight_by}"
