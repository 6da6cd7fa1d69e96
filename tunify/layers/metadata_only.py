"""The tensor a layer's weight reads as while it has no single value (per-sample ω, a varying ω map)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

_METADATA = (
    Tensor.dtype.__get__,
    Tensor.device.__get__,
    Tensor.shape.__get__,
    Tensor.ndim.__get__,
    Tensor.layout.__get__,
    Tensor.is_cuda.__get__,
    Tensor.requires_grad.__get__,
    Tensor.size,
    Tensor.dim,
    Tensor.numel,
    Tensor.is_floating_point,
    Tensor.__len__,
)


class MetadataOnlyTensor(Tensor):
    """A layer's tensor read directly while it has no single value (one per sample, or per pixel).

    Its dtype, device and shape can be read; any use of its values raises ``error`` (see
    :meth:`TunableLayer.current_tensor`).
    """

    error: Exception

    @staticmethod
    def of(tensor: Tensor, error: Exception) -> MetadataOnlyTensor:
        out = tensor.detach().as_subclass(MetadataOnlyTensor)
        out.error = error
        return out

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _METADATA:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        leaves, _ = tree_flatten((args, kwargs))
        raise next(leaf.error for leaf in leaves if isinstance(leaf, MetadataOnlyTensor))
