"""Exponential moving average of a model's weights.

Averaged weights of an image-restoration network are usually a little better and much less noisy than the
last iterate, so tunify evaluates and exports the EMA when the run keeps one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from tunify._state_dict import load_state


class ModelEMA:
    """Shadow copy of every floating-point entry of a model's state dict.

    ``update`` applies ``shadow = decay * shadow + (1 - decay) * current`` to parameters and float buffers
    (e.g. BatchNorm running statistics); integer buffers are copied.

    Args:
        model: the (unwrapped) model to track; the shadow starts as a copy of its current weights.
        decay: weight of the past, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow one step towards the model's current weights."""
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow weights, keyed like the model's state dict."""
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the shadow (strict: the keys must match the tracked model)."""
        if set(state) != set(self.shadow):
            missing, extra = set(self.shadow) - set(state), set(state) - set(self.shadow)
            raise KeyError(
                f"EMA state keys differ from the model: missing {sorted(missing)}, extra {sorted(extra)}"
            )
        with torch.no_grad():
            for key, value in state.items():
                self.shadow[key].copy_(value)

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the EMA weights into ``model`` (e.g. to evaluate), restoring them afterwards."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        load_state(model, self.shadow)
        try:
            yield model
        finally:
            load_state(model, backup)
