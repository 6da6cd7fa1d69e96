"""Tunable plain tensors: parameters a user names (NAFNet's β/γ, SwinIR's relative position bias tables)
and parameters that a module passes to ``F.conv2d``/``F.linear`` itself.

Each becomes a ``torch.nn.utils.parametrize`` parametrisation: the module still reads ``self.beta`` in its
own forward, and gets Σ α_i β_i. The p copies are the parametrisation's originals
(``parametrizations.beta.original0`` …) and φ is its own (``parametrizations.beta.0.phi``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .omega import last_grid, map_mean, map_on_grid, omega_form, shared_row
from .reader import OmegaReader, check_kernels, check_p, make_phi
from .source import without_autocast


def mixes_per_pixel(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of this shape can be mixed per pixel: one value per channel, (1, C, 1, …)."""
    return len(shape) >= 2 and shape[0] == 1 and all(s == 1 for s in shape[2:])


def mix(copies: tuple[Tensor, ...], alpha: Tensor) -> Tensor:
    """Σ_i α_i t_i: the tensor's shape for α of shape (kernels,), (B, *shape) for α of shape (B, kernels)."""
    return without_autocast(_mix, alpha, copies)


def _mix(alpha: Tensor, copies: tuple[Tensor, ...]) -> Tensor:
    flat = torch.stack(copies).reshape(len(copies), -1)  # tiny tensors: stacking costs nothing here
    mixed = alpha.to(flat.dtype) @ flat  # a product and views: a third fewer autograd steps than tensordot
    return mixed.view(*alpha.shape[:-1], *copies[0].shape)


class TunableTensor(OmegaReader):
    """The parametrisation that mixes p copies of one tensor.

    With per-sample ω of shape (B, p) a tensor whose leading dimension is 1 (β of shape (1, C, 1, 1))
    becomes (B, *shape[1:]), which broadcasts against batch-first activations. With an ω map it is mixed per
    pixel on the grid of the last convolution that ran (the feature map β scales), becoming (B, C, *S).
    Other tensors cannot vary per sample inside an arbitrary forward; :class:`~tunify.TunableModel` then
    runs per-sample calls under ``torch.func.vmap``, where each sample sees a shared ω, and maps act through
    their average.
    """

    def __init__(
        self,
        p: int,
        name: str,
        shape: tuple[int, ...],
        *,
        kernels: int | None = None,
        like: Tensor | None = None,
    ) -> None:
        super().__init__()
        check_p(p)
        self.p = p
        self.kernels = check_kernels(p, kernels)
        self.name = name
        self.needs_vmap = len(shape) == 0 or shape[0] != 1
        self.per_pixel = mixes_per_pixel(shape)
        self.phi = make_phi(p, self.kernels, like=like)

    def right_inverse(self, tensor: Tensor) -> tuple[Tensor, ...]:
        return tuple(tensor.detach().clone().contiguous() for _ in range(self.kernels))

    def forward(self, *copies: Tensor) -> Tensor:
        omega = self.omega()
        form = omega_form(omega)
        if form == "map":
            grid = last_grid()
            if self.per_pixel and grid is not None and len(grid) == copies[0].ndim - 2:
                alpha = self.alpha(map_on_grid(omega, grid))  # [B, kernels, *S]
                return torch.einsum(
                    "bk...,kc->bc...", alpha.to(copies[0].dtype), torch.stack(copies).flatten(1)
                )
            omega = map_mean(omega)
            form = omega_form(omega)
        if form == "shared":
            return self.cached(
                omega,
                lambda: (dict(enumerate(copies)), self._modules["phi"]._parameters),
                "shared",
                lambda: mix(copies, self.alpha(shared_row(omega))),
            )
        if self.needs_vmap:
            raise ValueError(
                f"tunable tensor {self.name!r} of shape {tuple(copies[0].shape)} cannot take per-sample omega "
                "here: only tensors with a leading dimension of 1 broadcast over the batch"
            )
        return mix(copies, self.alpha(omega)).flatten(0, 1)

    @torch.no_grad()
    def materialize(self, copies: tuple[Tensor, ...], omega: Tensor) -> Tensor:
        """The tensor at a shared ``omega`` (p,), mixed in at least float32 and cast back (as layers bake)."""
        alpha = self.alpha_exact(omega)
        return mix(tuple(c.to(alpha.dtype) for c in copies), alpha).to(copies[0].dtype)


def make_tensor_tunable(
    module: nn.Module, name: str, p: int, full_name: str, *, kernels: int | None = None
) -> TunableTensor:
    """Turn ``module.<name>`` into a tunable tensor in place and return its parametrisation."""
    tensor = getattr(module, name)
    tunable = TunableTensor(p, full_name, tuple(tensor.shape), kernels=kernels, like=tensor)
    parametrize.register_parametrization(module, name, tunable, unsafe=True)
    _read_directly(module, name, tunable.kernels)
    return tunable


def _read_directly(module: nn.Module, name: str, kernels: int) -> None:
    """Replace parametrize's getter of ``module.<name>`` by one that calls the :class:`TunableTensor` itself.

    parametrize's getter costs ~10 µs a read (a ModuleList index, a generator, an AttributeError to find
    the end of the chain) and NAFNet reads β and γ in every block. The shortcut holds while ours is the
    only parametrisation of the tensor and parametrize's own caching is off; otherwise it defers to the
    original getter. The property goes on the class parametrize made for this module (deep copies share
    that class; the getter reads everything from the instance).
    """
    original = getattr(type(module), name)
    keys = tuple(f"original{i}" for i in range(kernels))

    def read(self: nn.Module) -> Tensor:
        chain = self._modules["parametrizations"]._modules[name]
        if len(chain._modules) != 1 or parametrize._cache_enabled:
            return original.fget(self)
        tunable = chain._modules["0"]
        mixed = tunable.cached_shared()  # made from these copies in this call's cache epoch
        if mixed is not None:
            return mixed
        params = chain._parameters
        if keys[0] not in params:
            return original.fget(self)
        return tunable(*(params[k] for k in keys))

    setattr(type(module), name, property(read, original.fset))


def anchor_tensor(parametrizations: parametrize.ParametrizationList, index: int) -> None:
    """Freeze copy ``index`` of a tunable tensor and its φ."""
    getattr(parametrizations, f"original{index}").requires_grad_(False)
    parametrizations[0].anchor(index)
