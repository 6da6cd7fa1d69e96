"""Loading weights that carry no module versions (a safetensors file, a dict built from tensors)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from torch import Tensor, nn


def load_state(module: nn.Module, state: Mapping[str, Tensor], strict: bool = True) -> object:
    """``module.load_state_dict(state, strict)``, with the module's own version records when ``state`` has none.

    torch keeps each submodule's format version in a state dict's ``_metadata``; safetensors stores tensors
    only, and a module that checks its version while loading (torchvision's MNASNet) refuses none. Weights
    read this way were written from the classes in use, so their versions are the module's own.
    """
    if getattr(state, "_metadata", None) is None:
        state = OrderedDict(state)
        state._metadata = module.state_dict()._metadata  # type: ignore[attr-defined]
    return module.load_state_dict(state, strict=strict)
