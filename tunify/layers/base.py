"""The common machinery of tunable layers: p tensor copies, the affine map φ and mixing by α = φ(ω).

Initialisation (the choice tunify makes): every copy starts equal to the pretrained tensor and φ starts as
α = ω − mean(ω) + 1/p, i.e. weight ``I − 1/p`` and bias ``1/p``. The α always sum to one, so a freshly
converted layer computes exactly the pretrained layer for every ω, and yet α_i moves with ω_i, so the
gradient of an objective weighted by ω_i reaches the i-th copy most strongly from the first step on.

That map is made for ω on the simplex (Σω = 1, the paper's trade-offs): it sends ω and ω + c·1 to the same α,
so it cannot tell apart the corners (0, 0) and (1, 1) of independent knobs. For those (``independent=True``)
a layer holds p + 1 copies, a base one and one per entry, and φ starts as α = (ω_1, …, ω_p, 1 − Σω): still
summing to one, and a different network at every corner of [0, 1]^p.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from .omega import MissingOmegaError, current_omega, in_backward

T = TypeVar("T")


def check_p(p: int) -> None:
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"p (the number of tunable parameters) must be an integer >= 1, got {p!r}")


def check_kernels(p: int, kernels: int | None) -> int:
    """The number of copies of each tensor: p (ω on the simplex) or p + 1 (independent ω entries)."""
    kernels = p if kernels is None else kernels
    if kernels not in (p, p + 1):
        raise ValueError(f"kernels must be p ({p}) or p + 1 ({p + 1}), got {kernels!r}")
    return kernels


def make_phi(p: int, kernels: int | None = None) -> nn.Linear:
    """φ: ℝ^p → ℝ^kernels, affine, with Σα = 1 for every ω (see the module docstring).

    ``kernels = p``: α = ω − mean(ω) + 1/p. ``kernels = p + 1``: α = (ω, 1 − Σω), the last copy the base.
    """
    kernels = check_kernels(p, kernels)
    phi = nn.Linear(p, kernels)
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
    phi: nn.Linear
    _last_omega: Tensor | None = None
    _shared_cache: tuple[Tensor, tuple, Any] | None = None

    def omega(self) -> Tensor:
        """The ω of the current call ((p,) or (B, p))."""
        omega = current_omega()
        if omega is None:
            if self._last_omega is not None and in_backward():
                return self._last_omega  # a checkpointed forward being recomputed
            raise MissingOmegaError(
                f"{type(self).__name__} ran without omega: call the TunableModel as model(x, omega=...) "
                "or run the layer inside tunify.use_omega(omega)"
            )
        if not _is_batched(omega):  # a vmapped row must not outlive its vmap
            self._last_omega = omega
        return omega

    def mix_shared(self, omega: Tensor, tensors: Iterable[Tensor], mix_fn: Callable[[Tensor], T]) -> T:
        """``mix_fn(α)`` at a shared ω ((p,) or (1, p)), where ``tensors`` are all it reads besides α.

        Without autograd (inference at a fixed ω) the result is kept until ω or any of ``tensors`` or φ
        changes, so a network applied image after image with one ω tensor mixes its kernels once and then
        costs what the original costs. The cache is keyed on that ω tensor object and on version counters,
        which every in-place update of ω or of a weight bumps, and on where the tensors live (``.to()``,
        ``.half()``); a new ω tensor simply mixes again.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or _is_batched(omega):
            return mix_fn(self.alpha(omega.reshape(-1, self.p)[0]))
        watched = (*tensors, *self.phi.parameters())
        key = (_version(omega), *((_version(t), t.data_ptr()) for t in watched))
        cached = self._shared_cache
        if cached is not None and cached[0] is omega and cached[1] == key:
            return cached[2]
        result = mix_fn(self.alpha(omega.reshape(-1, self.p)[0]))
        self._shared_cache = (omega, key, result)
        return result

    def alpha(self, omega: Tensor | None = None) -> Tensor:
        """α = φ(ω): (kernels,) for a shared ω, (B, kernels) per sample."""
        omega = self.omega() if omega is None else omega
        return self.phi(omega.to(self.phi.weight.dtype))


def _is_batched(omega: Tensor) -> bool:
    """Whether ω is a per-sample row under ``torch.func.vmap`` (never cached, never stored)."""
    return torch._C._functorch.is_batchedtensor(omega)


def _version(tensor: Tensor) -> int | None:
    """The in-place version counter (inference-mode tensors have none)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


def mix(copies: Sequence[Tensor], alpha: Tensor) -> Tensor:
    """Σ_i α_i t_i: the tensor's shape for α of shape (p,), (B, *shape) for α of shape (B, p)."""
    stacked = torch.stack(tuple(copies))  # [p, *shape]
    return torch.tensordot(alpha.to(stacked.dtype), stacked, dims=1)


class TensorBank(nn.Module):
    """Independent, contiguous copies of one tensor (state-dict keys ``0`` … ``kernels-1``)."""

    def __init__(self, tensor: Tensor, kernels: int) -> None:
        super().__init__()
        for i in range(kernels):
            copy_i = nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=tensor.requires_grad)
            self.register_parameter(str(i), copy_i)

    def forward(self, alpha: Tensor) -> Tensor:
        return mix(self._parameters.values(), alpha)

    # Networks read ``layer.weight.device`` / ``.dtype`` / ``.shape`` to allocate tensors (timm's XCiT and
    # EdgeNeXt positional encodings); a bank answers for the tensor it holds copies of.
    @property
    def device(self) -> torch.device:
        return self._parameters["0"].device

    @property
    def dtype(self) -> torch.dtype:
        return self._parameters["0"].dtype

    @property
    def shape(self) -> torch.Size:
        return self._parameters["0"].shape


def get_tensor(module: nn.Module, name: str) -> Tensor | None:
    """``module.<name>`` for a dotted name such as ``out_proj.weight``."""
    owner, _, attr = name.rpartition(".")
    return getattr(module.get_submodule(owner), attr, None)


def set_parameter(module: nn.Module, name: str, value: Tensor | None) -> None:
    """Register ``value`` (or None, which keeps the slot but drops it from the state dict) under ``name``."""
    owner, _, attr = name.rpartition(".")
    target = module.get_submodule(owner)
    target._parameters[attr] = None if value is None else nn.Parameter(value)


class TunableLayer(OmegaReader):
    """Base class of tunable layers.

    The layer keeps the original module as ``base_layer`` (its hyper-parameters and any tensor that is not
    tunable) with the tunable tensors removed, and holds for each of them a :class:`TensorBank` of p copies
    registered under the tensor's name with dots replaced by underscores (``weight.0``, ``bias.1``,
    ``out_proj_weight.0``). Subclasses implement ``forward`` and may override :meth:`materialize`.

    Protocol:
        ``tensor_names``: the base layer's tensors that are tunable.
        ``forward(*args)``: reads ω with :meth:`omega`; ``alpha()`` gives φ(ω).
        ``materialize(omega)``: the base layer as a plain module with tensors mixed at ``omega``.
    """

    tensor_names: tuple[str, ...] = ("weight", "bias")

    def __init__(
        self,
        base_layer: nn.Module,
        p: int,
        tensor_names: tuple[str, ...] | None = None,
        *,
        kernels: int | None = None,
    ) -> None:
        super().__init__()
        check_p(p)
        self.p = p
        self.kernels = check_kernels(p, kernels)
        names = self.tensor_names if tensor_names is None else tensor_names
        self.tensor_names = tuple(n for n in names if get_tensor(base_layer, n) is not None)
        if not self.tensor_names:
            raise ValueError(
                f"{type(base_layer).__name__} has none of the tensors {list(names)} to make tunable"
            )
        self.phi = make_phi(p, self.kernels).to(get_tensor(base_layer, self.tensor_names[0]).device)
        for name in self.tensor_names:
            self.add_module(self.bank_name(name), TensorBank(get_tensor(base_layer, name), self.kernels))
            set_parameter(base_layer, name, None)
        self.base_layer = base_layer

    def __getattr__(self, name: str) -> Any:
        """Hyper-parameters (``in_channels``, ``kernel_size``, ``batch_first`` …) read through to the base layer."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer" or "base_layer" not in self._modules:
                raise
            return getattr(self._modules["base_layer"], name)

    @staticmethod
    def bank_name(tensor_name: str) -> str:
        return tensor_name.replace(".", "_")

    def bank(self, tensor_name: str) -> TensorBank:
        return getattr(self, self.bank_name(tensor_name))

    def mixed(self, alpha: Tensor) -> dict[str, Tensor]:
        """Every tunable tensor mixed with ``alpha`` (per sample when ``alpha`` is (B, p))."""
        return {name: self.bank(name)(alpha) for name in self.tensor_names}

    def shared_tensors(self, omega: Tensor) -> dict[str, Tensor]:
        """Every tunable tensor mixed at a shared ω ((p,) or (1, p)), cached at inference (:meth:`mix_shared`)."""
        # a generator: read only to key the inference cache, never built during training
        banks = (t for name in self.tensor_names for t in self.bank(name).parameters())
        return self.mix_shared(omega, banks, self.mixed)

    @torch.no_grad()
    def materialize(self, omega: Tensor) -> nn.Module:
        """A plain copy of the base layer with its tensors mixed at a shared ``omega`` of shape (p,)."""
        plain = copy.deepcopy(self.base_layer)
        for name, value in self.mixed(self.alpha(omega)).items():
            set_parameter(plain, name, value.clone())
        return plain

    def extra_repr(self) -> str:
        kernels = f", kernels={self.kernels}" if self.kernels != self.p else ""
        return f"p={self.p}{kernels}, tunable={list(self.tensor_names)}"
