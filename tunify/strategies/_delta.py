"""Tensor sources that hold one pretrained tensor and a cheap change of it per ω entry.

Every strategy here writes the i-th "copy" of a tensor as the pretrained tensor plus a delta,

    T_i = W + Δ_i(θ_i)   (Δ_r ≡ 0 for the reference entry r),   T(α) = Σ_i α_i T_i = (Σ_i α_i) W + Σ_{i≠r} α_i Δ_i,

so the mixed tensor is affine in α (what the spatial-ω path needs), equals W for every ω at conversion (each
Δ_i starts at zero and φ keeps Σα = 1), and means exactly what ``kernels`` means when φ is trained. The
reference entry is the one whose copy is W itself: entry 0 (the fidelity end, ω = e_0) on the simplex, the
base entry p with independent ω entries. Parameters are organised per entry (``weight.1.up``,
``weight.1.down``), so anchoring entry i freezes W and entry i's parameters and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tunify.layers import TensorSource
from tunify.layers.bank import bank_name


def reference_entry(p: int, entries: int) -> int:
    """The entry whose copy is the pretrained tensor: 0 on the simplex, the base entry p when independent."""
    return 0 if entries == p else p


class DeltaTensor(nn.Module):
    """One tunable tensor as ``base`` (the pretrained tensor) plus one delta per non-reference ω entry.

    Subclasses register each entry's parameters under the entry's index (``str(i)``) and implement
    :meth:`delta`. ``base`` is a parameter (trainable unless anchored) or, for a constant base such as
    AdaFM's identity filter, a non-persistent buffer.
    """

    def __init__(self, base: Tensor, entries: int, reference: int, *, trainable_base: bool = True) -> None:
        super().__init__()
        if not 0 <= reference < entries:
            raise ValueError(f"reference entry {reference} is not one of the {entries} entries")
        self.entries = entries
        self.reference = reference
        self.others = tuple(i for i in range(entries) if i != reference)
        requires_grad = base.requires_grad
        base = base.detach().clone().contiguous()
        if trainable_base:
            self.base = nn.Parameter(base, requires_grad=requires_grad)
        else:
            self.register_buffer("base", base, persistent=False)

    def delta(self, entry: int) -> Tensor:
        """Δ_entry, of the base's shape (zero at conversion)."""
        raise NotImplementedError

    def deltas(self) -> Tensor:
        """The non-reference entries' deltas stacked: (entries − 1, *shape)."""
        return torch.stack([self.delta(i) for i in self.others])

    def forward(self, alpha: Tensor) -> Tensor:
        """T(α): the base's shape for α of shape (entries,), (B, *shape) for α of shape (B, entries)."""
        alpha = alpha.to(self.base.dtype)
        total = alpha.sum(-1)
        others = alpha[..., list(self.others)]
        mixed = torch.tensordot(others, self.deltas(), dims=1) if self.others else 0.0
        if alpha.ndim == 1:
            return total * self.base + mixed
        return total.view(-1, *(1,) * self.base.ndim) * self.base + mixed

    def copies(self) -> Tensor:
        """Every entry's copy T_i stacked: (entries, *shape) (T_reference = the pretrained tensor)."""
        deltas = self.deltas() if self.others else self.base.new_zeros(0, *self.base.shape)
        parts = [deltas[: self.reference], self.base.new_zeros(1, *self.base.shape), deltas[self.reference :]]
        return torch.cat(parts) + self.base

    def entry_parameters(self, entry: int) -> list[nn.Parameter]:
        """The parameters that only entry ``entry`` reads (none for the reference entry)."""
        module = self._modules.get(str(entry))
        if module is not None:
            return list(module.parameters())
        param = self._parameters.get(str(entry))
        return [param] if param is not None else []

    def base_parameters(self) -> list[nn.Parameter]:
        """The parameters every entry reads (the pretrained tensor, when trainable)."""
        return [self.base] if isinstance(self.base, nn.Parameter) else []

    def added_parameters(self) -> int:
        """What the deltas add to the stored model: everything in the state dict but the pretrained tensor."""
        return sum(v.numel() for k, v in self.state_dict().items() if k != "base")


class FullDelta(DeltaTensor):
    """Δ_i is a full tensor of the base's shape: for biases, norms' scales and other small tensors."""

    def __init__(self, base: Tensor, entries: int, reference: int, *, trainable_base: bool = True) -> None:
        super().__init__(base, entries, reference, trainable_base=trainable_base)
        for i in self.others:
            self.register_parameter(str(i), nn.Parameter(torch.zeros_like(self.base)))

    def delta(self, entry: int) -> Tensor:
        return self._parameters[str(entry)]

    def deltas(self) -> Tensor:
        return torch.stack([self._parameters[str(i)] for i in self.others])


def entry_parameters_of(module: nn.Module, entry: int) -> list[nn.Parameter]:
    """Entry ``entry``'s parameters in every :class:`DeltaTensor` below ``module``."""
    return [p for m in module.modules() if isinstance(m, DeltaTensor) for p in m.entry_parameters(entry)]


def base_parameters_of(module: nn.Module) -> list[nn.Parameter]:
    """The shared pretrained tensors of every :class:`DeltaTensor` below ``module``."""
    return [p for m in module.modules() if isinstance(m, DeltaTensor) for p in m.base_parameters()]


class DeltaSource(TensorSource):
    """A layer's source made of one :class:`DeltaTensor` per tunable tensor (``weight.base``, ``weight.1.up`` …).

    Linear in α (T(0) = 0), so per-pixel ω runs the operation once per entry's copy, like ``kernels``.
    """

    linear = True

    def __init__(
        self,
        tensors: dict[str, Tensor],
        kernels: int,
        reference: int,
        make: Callable[[str, Tensor, int, int], DeltaTensor],
    ) -> None:
        super().__init__()
        self.names = tuple(tensors)
        self.kernels = kernels
        self.reference_entry = reference
        for name, tensor in tensors.items():
            self.add_module(bank_name(name), make(name, tensor, kernels, reference))

    def tensor(self, name: str) -> DeltaTensor:
        return getattr(self, bank_name(name))

    def forward(self, alpha: Tensor) -> dict[str, Tensor]:
        return {name: self.tensor(name)(alpha) for name in self.names}

    def reference(self, name: str) -> Tensor:
        return self.tensor(name).base

    def anchor(self, index: int) -> None:
        """Freeze the pretrained tensors (every entry reads them) and entry ``index``'s deltas."""
        for p in (*base_parameters_of(self), *entry_parameters_of(self, index)):
            p.requires_grad_(False)

    def entry_parameters(self, entry: int) -> list[nn.Parameter]:
        return entry_parameters_of(self, entry)

    def base_parameters(self) -> list[nn.Parameter]:
        return base_parameters_of(self)

    def vertices(self) -> tuple[None, dict[str, Tensor]]:
        return None, {name: self.tensor(name).copies() for name in self.names}
