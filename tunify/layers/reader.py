"""What every tunable module shares: reading the ω of the current call, the affine map φ, the inference cache.

Initialisation (the choice tunify makes): a source starts at the pretrained tensors for every α that sums to
one, and φ starts as α = ω − mean(ω) + 1/p, i.e. weight ``I − 1/p`` and bias ``1/p``. The α always sum to
one, so a freshly converted layer computes exactly the pretrained layer for every ω, and yet α_i moves with
ω_i, so the gradient of an objective weighted by ω_i reaches the i-th copy most strongly from the first step.

That map is made for ω on the simplex (Σω = 1, the paper's trade-offs): it sends ω and ω + c·1 to the same α,
so it cannot tell apart the corners (0, 0) and (1, 1) of independent knobs. For those (``independent=True``)
a source takes p + 1 entries, a base one and one per ω entry, and φ starts as α = (ω_1, …, ω_p, 1 − Σω):
still summing to one, and a different network at every corner of [0, 1]^p.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .omega import (
    MissingOmegaError,
    current_alphas,
    current_epoch,
    current_omega,
    in_backward,
    omega_form,
    values_read_in_call,
)
from .source import without_autocast

T = TypeVar("T")


def check_p(p: int) -> None:
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"p (the number of tunable parameters) must be an integer >= 1, got {p!r}")


def check_kernels(p: int, kernels: int | None) -> int:
    """The length of α: p (ω on the simplex) or p + 1 (independent ω entries)."""
    kernels = p if kernels is None else kernels
    if kernels not in (p, p + 1):
        raise ValueError(f"kernels must be p ({p}) or p + 1 ({p + 1}), got {kernels!r}")
    return kernels


def mixing_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision kernels are mixed in when exactness matters (φ, baking): at least float32, so a
    half-precision sum of p kernels keeps its digits and a float64 network stays float64."""
    return torch.promote_types(dtype, torch.float32)


def make_phi(p: int, kernels: int | None = None, like: Tensor | None = None) -> nn.Linear:
    """φ: ℝ^p → ℝ^kernels, affine, with Σα = 1 for every ω (see the module docstring).

    ``kernels = p``: α = ω − mean(ω) + 1/p. ``kernels = p + 1``: α = (ω, 1 − Σω), the last entry the base.
    ``like``: the tensor φ will feed, whose device it takes, in :func:`mixing_dtype` of its dtype.
    """
    kernels = check_kernels(p, kernels)
    factory = {} if like is None else dict(device=like.device, dtype=mixing_dtype(like.dtype))
    phi = nn.Linear(p, kernels, **factory)
    with torch.no_grad():
        if kernels == p:
            phi.weight.copy_(torch.eye(p) - 1.0 / p)
            phi.bias.fill_(1.0 / p)
        else:
            phi.weight.copy_(torch.cat([torch.eye(p), -torch.ones(1, p)]))
            phi.bias.copy_(torch.eye(kernels)[-1])
    return phi


class OmegaReader(nn.Module):
    """Reads the ω of the current call and maps it through this module's ``phi``."""

    p: int
    kernels: int
    phi: nn.Linear
    _last_omega: Tensor | None = None

    def omega(self) -> Tensor:
        """The ω of the current call: (p,), (B, p) or a map (B, p, *S)."""
        omega = current_omega()
        if omega is None:
            recomputed = self._omega_of_recomputation() if in_backward() else None
            if recomputed is not None:
                return recomputed
            raise MissingOmegaError(
                f"{type(self).__name__} ran without omega: call the TunableModel as model(x, omega=...) "
                "or run the layer inside tunify.use_omega(omega)"
            )
        if _transform() is None:  # ω wrapped by vmap or grad must not outlive the transform
            self.__dict__["_last_omega"] = omega  # a plain attribute: nn.Module's __setattr__ costs a call
        return omega

    def _omega_of_recomputation(self) -> Tensor | None:
        """The ω of a checkpointed segment recomputed in backward: the converted network's record of its
        forward calls (:mod:`tunify.layers.recompute`), else this layer's last ω (used outside one)."""
        calls = self.__dict__.get("_forward_calls")
        omega = calls.for_backward(type(self).__name__) if calls is not None else None
        return omega if omega is not None else self._last_omega

    def __setattr__(self, name: str, value: Any) -> None:
        """Count a replaced φ, source or parameter dict (:func:`structure_edits`): a converted network keeps
        the list of dicts its cache epochs read until then."""
        if isinstance(value, nn.Module | Tensor) or name in ("_parameters", "_modules"):
            global _structure_edits
            _structure_edits += 1
        super().__setattr__(name, value)

    def alpha(self, omega: Tensor | None = None) -> Tensor:
        """α = φ(ω): (kernels,) for a shared ω, (B, kernels) per sample, (B, kernels, *S) for a map; read
        from the call's α table when the converted network made one (:mod:`tunify.layers.alphas`)."""
        omega = self.omega() if omega is None else omega
        table = current_alphas()
        row = table.row(self, omega) if table is not None else None
        if row is not None:
            return row
        return without_autocast(self._phi, omega)  # α feeds the (cached) mixing: in φ's own precision

    def _phi(self, omega: Tensor) -> Tensor:
        phi = self._modules["phi"]
        weight, bias = phi.weight, phi.bias
        omega = omega.to(weight.dtype)
        if omega_form(omega) == "map":
            return F.linear(omega.movedim(1, -1), weight, bias).movedim(-1, 1)
        return F.linear(omega, weight, bias)  # not phi(ω): a module call costs more than the product

    def alpha_exact(self, omega: Tensor) -> Tensor:
        """α at a shared ω in :func:`mixing_dtype` of φ's, for baking (a half-precision φ would round α)."""
        dtype = mixing_dtype(self.phi.weight.dtype)
        return F.linear(omega.to(dtype), self.phi.weight.to(dtype), self.phi.bias.to(dtype))

    def anchor(self, index: int) -> None:
        """Freeze φ and whatever α = e_index reads (see :func:`tunify.anchor`)."""
        self.phi.requires_grad_(False)

    def train(self, mode: bool = True) -> OmegaReader:
        """Also drop the inference cache: ``model.eval()`` before a validation pass then sees weights
        written through ``.data`` (an old-style EMA update), which no version counter records."""
        self.__dict__.pop("_cache", None)
        self.__dict__.pop("_epoch_shared", None)
        return super().train(mode)

    def cached(
        self,
        key_omega: Tensor | None,
        watched: Callable[[], Sequence[dict[str, Any]]],
        slot: str,
        fn: Callable[[], T],
    ) -> T:
        """``fn()``, kept at inference until ``key_omega`` or a parameter in ``watched()`` changes.

        So a network applied image after image with one ω mixes its kernels once and then costs what the
        original costs. ``watched()`` gives the ``_parameters`` dicts that ``fn`` reads, so a replaced
        parameter shows too. Without autograd the result is keyed on the ω tensor object and version
        counters (bumped by every in-place update), and on where the parameters live (``.to()``,
        ``.half()``, ``.data =``). Tensors made under ``torch.inference_mode`` have no version counter: ω is
        then compared by value, and weights without one are never cached. Writes through ``.data``
        (``p.data.mul_(…)``) bump no counter: :meth:`train` / ``eval()`` drop the cache. Inside a call of a
        converted network that checked all of this for every layer at once (:mod:`tunify.layers.epoch`), the
        ``"shared"`` slot is recorded for that epoch (:meth:`cached_shared`) and then used as it is; other
        slots serve per-sample and map calls, which have no epoch.
        """
        if not caching_allowed():
            return fn()  # inside a torch.func transform the tensors are its wrappers: nothing to keep
        if slot == "shared":
            vouched = self.cached_shared()
            if vouched is not None:
                return vouched
        try:
            weights = weights_key(watched())
        except RuntimeError:  # an inference-mode tensor: no version counter, so never cached
            return fn()
        key = omega_key(key_omega)
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get(slot)
        if hit is None or hit[1] != key or hit[0] != weights:
            hit = cache[slot] = (weights, key, fn(), key_omega)  # ω kept alive: its id stays its own
        epoch = current_epoch()
        if slot == "shared" and epoch is not None and id(self) in epoch.readers:  # it checked our parameters
            self.__dict__["_epoch_shared"] = (epoch, hit[2])
        return hit[2]

    def cached_shared(self) -> Any:
        """What :meth:`cached` keeps in slot ``"shared"`` when this call's epoch vouches for it, else None.

        The first question a layer's forward asks: at a shared ω a converted network applied again costs one
        context-variable read and one lookup in the module's own ``__dict__`` per layer (a record of its own,
        not the cache's dict: between the convolutions of a real network every object touched costs). A
        record is only made inside an epoch, so outside one (None) it never matches.
        """
        record = self.__dict__.get("_epoch_shared")
        return record[1] if record is not None and record[0] is current_epoch() else None


_structure_edits = 0
_version = attrgetter("_version")


def structure_edits() -> int:
    """How many times a submodule, parameter or parameter dict of any tunable module was assigned."""
    return _structure_edits


def weights_key(dicts: Iterable[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """What identifies the parameters in ``dicts`` (``_parameters`` dicts) for the cache: each one's version
    counter and storage. Raises RuntimeError for a tensor made under ``torch.inference_mode`` (no counter).

    Two C-level passes over one list: a converted network reads a few hundred parameters per call."""
    tensors = [t for params in dicts for t in params.values() if t is not None]
    return list(map(_version, tensors)), list(map(Tensor.data_ptr, tensors))


def caching_allowed() -> bool:
    """Whether mixed tensors may be kept across calls: no autograd, no compiler, no ``torch.func`` transform."""
    return not (torch.is_grad_enabled() or torch.compiler.is_compiling() or transform_active())


def transform_active() -> bool:
    """Whether a ``torch.func`` transform (vmap, grad, jvp …) is running: its tensors are wrappers."""
    return _transform() is not None


def omega_key(omega: Tensor | None) -> tuple | None:
    """What identifies ω for the cache: the tensor's id and version, or its values when it has no version."""
    if omega is None:
        return None
    try:
        return ("tensor", id(omega), omega._version)
    except RuntimeError:  # made under torch.inference_mode: no version counter, so its values
        read = values_read_in_call()
        hit = read.get(id(omega)) if read is not None else None
        if hit is not None:
            return hit[1]
        key = ("values", tuple(omega.reshape(-1).tolist()), omega.device)
        if read is not None:
            read[id(omega)] = (omega, key)  # ω kept alive for the call: its id stays its own
        return key


_transform: Callable[[], Any] = torch._C._functorch.peek_interpreter_stack
"""The innermost active ``torch.func`` transform (vmap, grad, jvp …), or None outside them."""
