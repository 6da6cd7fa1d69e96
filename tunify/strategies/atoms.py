"""Filter atoms (Chen, Miao, Qiu, 2024: "Parameter-Efficient Tuning of Large Convolutional Models").

A k×k kernel W (C_out, C_in/g, k, k), unfolded to W_f of shape (C_out·C_in/g, k²), is written exactly as
fixed atom coefficients times m spatial atoms plus a fixed remainder:

    W_f = A·D + R,   D = the top-m right singular vectors of W_f (m × k²),  A = W_f·Dᵀ,  R = W_f·(I − DᵀD),

(R = 0 for m = k²). The tunable part is one set of atom deltas per ω entry, ΔD_i (m × k²), zero at
conversion: copy i = A·(D + ΔD_i) + R = W + A·ΔD_i, so an objective adds m·k² parameters to a layer (81 for
3×3), whatever its channel counts. The coefficients A are W's coordinates on the atoms, computed from W on
the fly: fixed whenever W is (anchored or two-stage training, the paper's setting), and following W when the
pretrained kernel is itself trained. Only D (m·k² numbers) is stored besides W.

``overcomplete=m1``: the paper's atoms of atoms. Each input channel c gets its own atom deltas, each a
combination of m1 sub-atoms per atom, ΔD_i[c, j] = Σ_l β_i[c, j, l]·S_i[j, l] (β random, S zero at
conversion), so an objective adds C_in·m·m1 + m·m1·k² parameters and far more freedom.

Layers without a spatial kernel (1×1 convolutions, Linear, attention projections) have nothing to
decompose; they take :mod:`~tunify.strategies.lowrank`'s delta, and the conversion report says so.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._delta import DeltaTensor, FullDelta
from .lowrank import low_rank_or_full
from .registry import Strategy, _positive_int, register_strategy, spatial_size


def svd_atoms(weight: Tensor, m: int) -> Tensor:
    """The m leading spatial atoms of a kernel (right singular vectors of its (C_out·C_in, k²) unfolding);
    at most as many as the unfolding has rows."""
    flat = weight.detach().reshape(-1, math.prod(weight.shape[2:])).double()
    _, _, vh = torch.linalg.svd(flat, full_matrices=False)
    return vh[:m].to(weight.dtype).contiguous()


class _Overcomplete(nn.Module):
    def __init__(self, channels: int, m: int, m1: int, spatial: int, like: Tensor) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.randn(channels, m, m1, dtype=like.dtype, device=like.device) / m1**0.5)
        self.sub = nn.Parameter(torch.zeros(m, m1, spatial, dtype=like.dtype, device=like.device))


class AtomDelta(DeltaTensor):
    """Copy i of a k×k kernel = W + A·ΔD_i with A the coefficients of W on its m SVD atoms (module docstring)."""

    def __init__(
        self, base: Tensor, entries: int, reference: int, atoms: int | None = None, overcomplete: int = 0
    ) -> None:
        super().__init__(base, entries, reference)
        spatial = math.prod(base.shape[2:])
        if base.ndim < 3 or spatial < 2:
            raise ValueError(f"filter atoms need a spatial kernel, got a tensor of shape {tuple(base.shape)}")
        m = spatial if atoms is None else atoms
        if not 1 <= m <= spatial:
            raise ValueError(f"atoms must be in [1, k² = {spatial}], got {m}")
        if overcomplete < 0:
            raise ValueError(f"overcomplete must be >= 0 (0: off), got {overcomplete}")
        # a kernel with fewer rows (C_out·C_in/g) than k² has only that many atoms, and is still exact on them
        self.register_buffer("atoms", svd_atoms(base, m))
        self.m, self.m1, self.spatial = self.atoms.shape[0], overcomplete, spatial
        for i in self.others:
            if overcomplete:
                self.add_module(
                    str(i), _Overcomplete(base.shape[1], self.m, overcomplete, spatial, self.base)
                )
            else:
                self.register_parameter(str(i), nn.Parameter(torch.zeros_like(self.atoms)))

    def coefficients(self) -> Tensor:
        """A: the kernel's coordinates on the atoms, (d0, d1, m)."""
        return self.base.reshape(*self.base.shape[:2], self.spatial) @ self.atoms.T

    def _atom_delta(self, entry: int) -> Tensor:
        """ΔD_entry: (m, k²), or (C_in, m, k²) with overcomplete atoms."""
        if self.m1:
            e = self._modules[str(entry)]
            return torch.einsum("cml,mlk->cmk", e.beta, e.sub)
        return self._parameters[str(entry)]

    def delta(self, entry: int) -> Tensor:
        return self.deltas()[self.others.index(entry)]

    def deltas(self) -> Tensor:
        coeff = self.coefficients()
        atom_deltas = torch.stack([self._atom_delta(i) for i in self.others])
        pattern = "oim,eimk->eoik" if self.m1 else "oim,emk->eoik"
        return torch.einsum(pattern, coeff, atom_deltas).reshape(len(self.others), *self.base.shape)

    def extra_repr(self) -> str:
        return f"atoms={self.m}" + (f", overcomplete={self.m1}" if self.m1 else "")


@register_strategy
class Atoms(Strategy):
    """``strategy="atoms", atoms=None, overcomplete=0, rank=4``: see the module docstring.

    ``atoms``: m per kernel (None: k², exact without remainder; capped at a layer's k²); ``overcomplete``:
    sub-atoms per atom (0: off); ``rank``: the low-rank fallback's rank for tensors without a spatial kernel.
    """

    name = "atoms"
    defaults: ClassVar[dict[str, Any]] = {"atoms": None, "overcomplete": 0, "rank": 4}

    def validate(self) -> None:
        if self.options["atoms"] is not None:
            _positive_int("atoms", self.options["atoms"], self.name)
        m1 = self.options["overcomplete"]
        if not isinstance(m1, int) or isinstance(m1, bool) or m1 < 0:
            raise ValueError(f"strategy 'atoms': overcomplete must be an integer >= 0 (0: off), got {m1!r}")
        _positive_int("rank", self.options["rank"], self.name)

    def make_tensor(self, name: str, tensor: Tensor, kernels: int, reference: int) -> DeltaTensor:
        spatial = spatial_size(tensor)
        if spatial > 1:
            m = self.options["atoms"]
            m = spatial if m is None else min(m, spatial)
            return AtomDelta(tensor, kernels, reference, m, self.options["overcomplete"])
        if tensor.ndim >= 2:
            return low_rank_or_full(tensor, kernels, reference, self.options["rank"])
        return FullDelta(tensor, kernels, reference)

    def describe(self, tensors: dict[str, Tensor]) -> str:
        if any(spatial_size(t) > 1 for t in tensors.values()):
            m = self.options["atoms"]
            extra = f", overcomplete={self.options['overcomplete']}" if self.options["overcomplete"] else ""
            return f"atoms m={'k²' if m is None else m}{extra}"
        return f"lowrank r={self.options['rank']} (atoms: no spatial kernel)"
