"""The one place that knows where a converted network keeps its copies and its φ maps.

Anchoring, DNI, optimiser groups and tests ask these functions instead of matching parameter names, so a
user's own submodule that happens to be called ``phi`` is never mistaken for tunify's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from .bank import KernelBank, bank_name
from .base import TunableLayer
from .reader import OmegaReader
from .tensor import TunableTensor, anchor_tensor


def _tensor_lists(model: nn.Module) -> Iterator[tuple[str, parametrize.ParametrizationList]]:
    for name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList) and isinstance(module[0], TunableTensor):
            yield name, module


def phi_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every φ parameter of every tunable layer and tensor (each once)."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, OmegaReader):
            found.update((id(p), p) for p in module.phi.parameters())
    return list(found.values())


def copy_state_keys(model: nn.Module) -> dict[str, int]:
    """State-dict key → copy index, for every copy held by a :class:`KernelBank` or a tunable tensor."""
    keys: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, TunableLayer) and isinstance(module.source, KernelBank):
            prefix = f"{name}." if name else ""
            for tensor in module.source.names:
                keys.update({f"{prefix}{bank_name(tensor)}.{i}": i for i in range(module.kernels)})
    for name, plist in _tensor_lists(model):
        keys.update({f"{name}.original{i}": i for i in range(plist[0].kernels)})
    return keys


def tunable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that can make one ω differ from another: sources, tunable tensors' copies, φ."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, TunableLayer):
            found.update((id(p), p) for m in (module.source, module.phi) for p in m.parameters())
    for _, plist in _tensor_lists(model):
        found.update((id(p), p) for p in plist.parameters())
    return list(found.values())


Watched = Callable[[], tuple[dict[str, Any], ...]]
"""Gives the ``_parameters`` dicts a module's inference cache reads (afresh: parameters and dicts get replaced)."""


def list_readers(model: nn.Module) -> list[tuple[OmegaReader, Watched]]:
    """Every tunable layer and tensor of ``model`` with what its tensors are mixed from: a layer's φ and
    source, a tensor's copies (its parametrisation's originals) and φ."""
    found: list[tuple[OmegaReader, Watched]] = [
        (module, module.watched) for module in model.modules() if isinstance(module, TunableLayer)
    ]
    found += [(plist[0], partial(_tensor_watched, plist)) for _, plist in _tensor_lists(model)]
    return found


def _tensor_watched(plist: parametrize.ParametrizationList) -> tuple[dict[str, Any], ...]:
    return plist._parameters, plist._modules["0"]._modules["phi"]._parameters


def anchor_layers(model: nn.Module, index: int) -> None:
    """Freeze entry ``index`` of every source and tensor, every φ, and every parameter that all ω share (see
    :func:`tunify.anchor`)."""
    for module in model.modules():
        if isinstance(module, TunableLayer):
            module.anchor(index)
    for _, plist in _tensor_lists(model):
        anchor_tensor(plist, index)
    tunable = {id(p) for p in tunable_parameters(model)}
    for param in model.parameters():
        if id(param) not in tunable:  # a norm's affine, a position-bias table, a layer left unconverted
            param.requires_grad_(False)
