"""The paper's tunable kernels: p full copies of every tunable tensor, mixed as Σ_i α_i k_i.

The copies of one tensor live stacked in one parameter of shape [kernels, *shape], so mixing is a single
matrix product (as timm's CondConv2d keeps its experts) and per-pixel ω reads the stack as it is. Freezing a
copy (:func:`tunify.anchor`) splits it into a parameter of its own, so optimisers never touch it. The state
dict keeps one entry per copy (``weight.0``, ``weight.1`` …), the format tunify has always published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .source import TensorSource


def bank_name(tensor_name: str) -> str:
    """The attribute under which a dotted tensor name's copies live (``out_proj.weight`` → ``out_proj_weight``)."""
    return tensor_name.replace(".", "_")


class CopyStack(nn.Module):
    """The copies of one tensor, stacked in parts: parameter ``"<start>"`` holds copies start … start + n − 1.

    One part normally; :meth:`split_off` gives a copy a part of its own so it can be frozen alone.
    """

    def __init__(self, tensor: Tensor, kernels: int) -> None:
        super().__init__()
        self.kernels = kernels
        self.shape = tuple(tensor.shape)
        stacked = tensor.detach().unsqueeze(0).expand(kernels, *self.shape).clone()
        self.register_parameter("0", nn.Parameter(stacked, requires_grad=tensor.requires_grad))
        self._register_state_dict_hook(_per_copy_state)
        self._register_load_state_dict_pre_hook(_stacked_state, with_module=True)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> CopyStack:
        """Keep the stack contiguous through ``module.to(memory_format=torch.channels_last)``, which gives every
        4-D and 5-D tensor that format: torch refuses it for the 5-D copies of a 2-D kernel, so they convert
        copy by copy. The stack's own layout never matters (mixing reads it flat and the mixed kernel follows
        the input's format in the convolution), and a contiguous one mixes without a copy."""

        def convert(t: Tensor) -> Tensor:
            try:
                out = fn(t)
            except RuntimeError as error:
                if "channels_last" not in str(error):
                    raise
                out = torch.stack([fn(copy) for copy in t.unbind()])
            return out.contiguous()

        return super()._apply(convert, recurse)

    def parts(self) -> list[tuple[int, nn.Parameter]]:
        """(first copy, parameter) of every part, in copy order."""
        return sorted(((int(k), v) for k, v in self._parameters.items()), key=lambda kv: kv[0])

    def stacked(self) -> Tensor:
        """All copies as one [kernels, *shape] tensor: the parameter itself when nothing is anchored (every
        layer mixes through here at every step), else its parts joined."""
        if len(self._parameters) == 1:
            return next(iter(self._parameters.values()))
        return torch.cat([p for _, p in self.parts()])

    def copy(self, index: int) -> Tensor:
        """A view of copy ``index``."""
        for start, part in reversed(self.parts()):
            if index >= start:
                return part[index - start]
        raise IndexError(index)

    def mix(self, alpha: Tensor) -> Tensor:
        """Σ_i α_i t_i: the tensor's shape for α (kernels,), (B, *shape) for α (B, kernels).

        One product over all copies, also when anchoring split them into parts: joining the parts costs one
        pass over the copies, a product per part and their sum two passes over the B mixed tensors (NAFNet's
        anchored per-sample training step: 1.31 → 1.27× the plain network). Anchored or not, a mix is the
        same arithmetic, so a network and its reloaded copy agree to the bit.
        """
        stack = self.stacked()
        mixed = alpha.to(stack.dtype) @ stack.flatten(1)
        shape = (*alpha.shape[:-1], *self.shape)
        return mixed if mixed.shape == shape else mixed.view(shape)  # a bias needs no view (nor its node)

    @torch.no_grad()
    def split_off(self, index: int) -> nn.Parameter:
        """Give copy ``index`` a parameter of its own (returned), keeping every copy's value."""
        for start, part in self.parts():
            if start <= index < start + part.shape[0]:
                break
        if part.shape[0] == 1:
            return part
        del self._parameters[str(start)]
        pieces = [(start, part[: index - start]), (index, part[index - start : index - start + 1])]
        pieces.append((index + 1, part[index - start + 1 :]))
        for piece_start, piece in pieces:
            if piece.shape[0]:
                new = nn.Parameter(piece.clone(), requires_grad=part.requires_grad)
                self.register_parameter(str(piece_start), new)
        return self._parameters[str(index)]


def _per_copy_state(module: CopyStack, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """State-dict hook: one entry per copy (``prefix + "i"``), each its own tensor (safetensors needs that)."""
    parts = [(start, state.pop(prefix + str(start))) for start, _ in module.parts()]
    for start, part in parts:
        for i in range(part.shape[0]):
            state[prefix + str(start + i)] = part[i] if isinstance(part, nn.Parameter) else part[i].clone()


def _stacked_state(module: CopyStack, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load pre-hook: per-copy entries back into the parts (missing copies are left for strict to report)."""
    keys = [prefix + str(i) for i in range(module.kernels)]
    if not all(k in state for k in keys):
        return
    copies = [state.pop(k) for k in keys]
    for start, part in module.parts():
        state[prefix + str(start)] = torch.stack(copies[start : start + part.shape[0]])


class KernelBank(TensorSource):
    """The default source: ``kernels`` copies of each tensor, every one starting as the pretrained tensor."""

    linear = True

    def __init__(self, tensors: dict[str, Tensor], kernels: int) -> None:
        super().__init__()
        self.names = tuple(tensors)
        self.kernels = kernels
        for name, tensor in tensors.items():
            self.add_module(bank_name(name), CopyStack(tensor, kernels))

    def stack(self, name: str) -> CopyStack:
        return getattr(self, bank_name(name))

    def forward(self, alpha: Tensor) -> dict[str, Tensor]:
        return {name: self.stack(name).mix(alpha) for name in self.names}

    def reference(self, name: str) -> Tensor:
        return self.stack(name).copy(0)

    def anchor(self, index: int) -> None:
        for name in self.names:
            self.stack(name).split_off(index).requires_grad_(False)

    def vertices(self) -> tuple[None, dict[str, Tensor]]:
        return None, {name: self.stack(name).stacked() for name in self.names}
