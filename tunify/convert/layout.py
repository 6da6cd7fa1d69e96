"""Whether a network's folded rows follow its samples, as per-sample ω assumes.

With per-sample ω (B rows), a layer whose input holds B·k rows gives each ω row k consecutive rows. That
is how window attention and patch folding lay out a (B, …) tensor, and what lets such networks train with
per-sample ω in one batched pass. Code that concatenates batches (``torch.cat([image1, image2])`` in RAFT
and siamese networks: k·B rows, image-major) or regroups them (detection heads over each image's
proposals) breaks it, and the result would be silently wrong. So the first per-sample call that folds rows
checks the network once, in eval mode and without gradients: every tunable layer's input in the batched call
must start with that layer's input when sample 0 runs alone. Where it does not, per-sample calls run
sample by sample instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ..layers import TunableLayer, use_omega
from ..layers.generic import sample_inputs

RELATIVE_TOLERANCE = 1e-3
"""A layer input may differ by this much, relative to its largest value, between the batched call and
sample 0 alone (batched and single kernels round differently); a misplaced row differs by its whole size."""


class _Differs(Exception):
    """Raised from a hook to stop the batched pass at the first layer input that does not match."""


def rows_follow_samples(model: nn.Module, omega: Tensor, args: tuple, kwargs: dict) -> bool:
    """Whether, in ``model(*args, **kwargs)`` with per-sample ``omega`` (B, p), every tunable layer's input
    begins with its input for sample 0 alone (the first k of its B·k rows)."""
    alone: list[Tensor] = []
    layers = [m for m in model.modules() if isinstance(m, TunableLayer)]
    # float32, eval mode, no autograd: reduced precision would blur the comparison, dropout would break it
    with evaluating(model), torch.no_grad(), torch.autocast(omega.device.type, enabled=False):
        with _inputs_to(layers, alone.append), use_omega(omega[0:1]):
            sample_args, sample_kwargs = sample_inputs(args, kwargs, omega, 0, type(model).__name__)
            model(*sample_args, **sample_kwargs)
        expected = iter(alone)

        def compare(x: Tensor) -> None:
            first = next(expected, None)
            if first is None or not _starts_with(x, first, omega.shape[0]):
                raise _Differs

        try:
            with _inputs_to(layers, compare), use_omega(omega):
                model(*args, **kwargs)
        except _Differs:
            return False
        return next(expected, None) is None  # as many layer calls as alone


def _starts_with(batched: Tensor, alone: Tensor, b: int) -> bool:
    """Whether ``batched`` holds B times the rows of ``alone`` and its first rows are ``alone``'s."""
    if batched.ndim == 0 or batched.shape[1:] != alone.shape[1:] or batched.shape[0] != b * alone.shape[0]:
        return False
    if not alone.numel():
        return True
    scale = alone.float().abs().max().item()
    difference = (batched[: alone.shape[0]].float() - alone.float()).abs().max().item()
    return difference <= RELATIVE_TOLERANCE * max(scale, 1e-6)


@contextmanager
def _inputs_to(layers: list[nn.Module], sink: Any) -> Iterator[None]:
    """Hand the first tensor input of each call of ``layers`` to ``sink``, in call order."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = next((v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)), None)
        if x is not None:
            sink(x)

    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block (no dropout, running statistics), each module's own mode back afterwards
    (also what ``tunify.export`` traces in)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
