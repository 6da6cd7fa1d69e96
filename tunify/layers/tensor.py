"""Tunable plain tensors: parameters a user names (NAFNet's β/γ, SwinIR's relative position bias tables)
and parameters that a module passes to ``F.conv2d``/``F.linear`` itself.

Each becomes a ``torch.nn.utils.parametrize`` parametrisation: the module still reads ``self.beta`` in its
own forward, and gets Σ α_i β_i. The p copies are the parametrisation's originals
(``parametrizations.beta.original0`` …) and φ is its own (``parametrizations.beta.0.phi``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils import parametrize

from .base import OmegaReader, check_kernels, check_p, make_phi, mix


class TunableTensor(OmegaReader):
    """The parametrisation that mixes p copies of one tensor.

    With per-sample ω of shape (B, p) a tensor whose leading dimension is 1 (β of shape (1, C, 1, 1))
    becomes (B, *shape[1:]), which broadcasts against batch-first activations. Other tensors cannot vary
    per sample inside an arbitrary forward; :class:`~tunify.TunableModel` then runs per-sample calls under
    ``torch.func.vmap``, where each sample sees a shared ω.
    """

    def __init__(self, p: int, name: str, shape: tuple[int, ...], *, kernels: int | None = None) -> None:
        super().__init__()
        check_p(p)
        self.p = p
        self.kernels = check_kernels(p, kernels)
        self.name = name
        self.needs_vmap = len(shape) == 0 or shape[0] != 1
        self.phi = make_phi(p, self.kernels)

    def right_inverse(self, tensor: Tensor) -> tuple[Tensor, ...]:
        return tuple(tensor.detach().clone().contiguous() for _ in range(self.kernels))

    def forward(self, *copies: Tensor) -> Tensor:
        omega = self.omega()
        if omega.ndim == 1 or omega.shape[0] == 1:
            return self.mix_shared(omega, copies, lambda alpha: mix(copies, alpha))
        if self.needs_vmap:
            raise ValueError(
                f"tunable tensor {self.name!r} of shape {tuple(copies[0].shape)} cannot take per-sample omega "
                "here: only tensors with a leading dimension of 1 broadcast over the batch"
            )
        return mix(copies, self.alpha(omega)).flatten(0, 1)


def make_tensor_tunable(
    module: nn.Module, name: str, p: int, full_name: str, *, kernels: int | None = None
) -> TunableTensor:
    """Turn ``module.<name>`` into a tunable tensor in place and return its parametrisation."""
    tensor = getattr(module, name)
    tunable = TunableTensor(p, full_name, tuple(tensor.shape), kernels=kernels).to(tensor.device)
    parametrize.register_parametrization(module, name, tunable, unsafe=True)
    return tunable
