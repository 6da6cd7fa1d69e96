"""A tunable wrapper for any module: it runs the module's own forward with mixed tensors.

Used for layers whose forward differs from their torch parent (timm's ``StdConv2d`` standardises its
weight, ``Conv2dSame`` pads dynamically) and for modules that call ``F.conv2d``/``F.linear`` on their own
parameters. A shared ω runs ``torch.func.functional_call`` once; per-sample ω runs it under
``torch.func.vmap`` over the samples, whose batching rules turn convolutions and matrix products with
per-sample weights into grouped and batched kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from .base import TunableLayer
from .omega import check_rows, use_omega


class TunableModule(TunableLayer):
    """Tunable version of an arbitrary module, keeping the module's own forward.

    Args:
        base_layer: the module; ``tensor_names`` are its (possibly dotted) parameter names to make tunable.
        p: number of tunable parameters.
        tensor_names: defaults to ``("weight", "bias")``.
        kernels: copies per tensor, p (default) or p + 1 for independent ω entries.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        p: int,
        tensor_names: tuple[str, ...] = ("weight", "bias"),
        *,
        kernels: int | None = None,
    ):
        super().__init__(base_layer, p, tensor_names, kernels=kernels)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        omega = self.omega()
        if omega.ndim == 2 and omega.shape[0] > 1:
            return vmap_over_samples(self.forward, omega, args, kwargs, type(self.base_layer).__name__)
        tensors = self.shared_tensors(omega)
        return functional_call(self.base_layer, tensors, args, kwargs)


def vmap_over_samples(fn: Callable[..., Any], omega: Tensor, args: tuple, kwargs: dict, where: str) -> Any:
    """Run ``fn(*args, **kwargs)`` once per row of ω (B, p) under ``torch.func.vmap``.

    Inside, every tunable layer sees that sample's ω of shape (p,) and takes its shared path; vmap's
    batching rules turn the per-sample kernels into grouped convolutions and batched matrix products. The
    main input's leading dimension (the first tensor argument) holds B·k rows, sample-major; tensors with
    the same leading dimension are split per sample, all others are shared by the samples.
    """
    b = omega.shape[0]
    leaves, spec = tree_flatten((args, kwargs))
    tensors = [t for t in leaves if isinstance(t, Tensor) and t.ndim > 0]
    if not tensors:
        raise ValueError(f"{where}: per-sample omega needs a batched tensor input")
    rows = tensors[0].shape[0]
    check_rows(omega, rows, where)
    split = [isinstance(t, Tensor) and t.ndim > 0 and t.shape[0] == rows for t in leaves]
    leaves = [t.reshape(b, rows // b, *t.shape[1:]) if s else t for t, s in zip(leaves, split, strict=True)]

    def one_sample(omega_row: Tensor, *sample_leaves: Any) -> Any:
        sample_args, sample_kwargs = tree_unflatten(list(sample_leaves), spec)
        with use_omega(omega_row):
            return fn(*sample_args, **sample_kwargs)

    in_dims = (0, *(0 if s else None for s in split))
    out = vmap(one_sample, in_dims=in_dims, randomness="different")(omega, *leaves)
    return tree_map(lambda t: t.flatten(0, 1) if isinstance(t, Tensor) else t, out)
