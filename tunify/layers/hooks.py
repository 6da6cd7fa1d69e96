"""Moving the hooks a user registered on an original module to the tunable layer that replaces it."""

from __future__ import annotations

import copy

from torch import nn

_MODULE_HOOKS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
    "_is_full_backward_hook",
)


def take_hooks(source: nn.Module, target: nn.Module, *, share: bool = True) -> None:
    """Give ``target`` the forward and backward hooks registered on ``source``.

    Converting: a tunable layer runs in its original's place but never calls it as a module (or calls it
    through ``functional_call``), so hooks a user registered on the original move to the layer, which fires
    them once per call; the dictionaries move whole, so the handles still remove them. Baking
    (``share=False``): the plain layer gets copies, as a deep copy of the original would have had.
    """
    for name in _MODULE_HOOKS:
        if name not in source.__dict__:  # a hook kind this torch does not have
            continue
        hooks = source.__dict__[name]
        target.__dict__[name] = hooks if share else copy.copy(hooks)
        if share:
            source.__dict__[name] = type(hooks)() if hooks is not None else None
