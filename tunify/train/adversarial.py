"""The optional discriminator of an adversarial loss, seen through one small interface.

Two spellings of the protocol are accepted, so the trainer works with ``tunify.objectives`` and with
hand-written losses:

- ``loss_fn.has_discriminator`` is true, ``loss_fn.discriminator_parameters()`` yields its parameters and
  ``loss_fn.discriminator_step_loss(output, batch)`` is the loss to backpropagate into it;
- ``loss_fn.discriminator`` is an ``nn.Module`` and ``loss_fn.discriminator_loss(output, batch)`` the loss.

The trainer always passes ``output.detach()``, so the discriminator step never reaches the generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Discriminator:
    """The discriminator's parameters and the function giving its loss for a (detached) output and batch."""

    parameters: list[nn.Parameter]
    loss: Callable[[torch.Tensor, Mapping[str, Any]], Any]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Keep generator backward passes from computing gradients for the discriminator."""
        flags = [p.requires_grad for p in self.parameters]
        for p in self.parameters:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(self.parameters, flags, strict=True):
                p.requires_grad_(flag)


def find_discriminator(loss_fn: Callable[..., Any]) -> Discriminator | None:
    """The loss function's discriminator, or None for a non-adversarial loss."""
    if getattr(loss_fn, "has_discriminator", False):
        return Discriminator(list(loss_fn.discriminator_parameters()), loss_fn.discriminator_step_loss)
    module = getattr(loss_fn, "discriminator", None)
    if isinstance(module, nn.Module) and callable(getattr(loss_fn, "discriminator_loss", None)):
        return Discriminator(list(module.parameters()), loss_fn.discriminator_loss)
    return None
