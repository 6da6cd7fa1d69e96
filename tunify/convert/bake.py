"""``bake``: a converted network mixed back into the plain one at a fixed ω (PEFT's merge-and-unload).

The baked network has the original layer classes, state-dict keys, parameter count and cost: what an app
ships when it serves one ω.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..layers import LayerContainer, TunableLayer, TunableTensor, check_omega
from .model import TunableModel


@torch.no_grad()
def bake(tmodel: TunableModel, omega: Tensor) -> nn.Module:
    """A plain copy of the network with every tunable tensor mixed at ``omega`` (shape (p,)).

    The result has the original layer classes, state-dict keys, parameter count and cost, and computes
    what ``tmodel(x, omega=omega)`` computes. Tensors are mixed in at least float32 and cast back to their own dtype
    (float16/bfloat16 models keep their precision for the sum). ``tmodel`` is left unchanged.

    Raises:
        ValueError: ω of the wrong shape, or a mixed tensor with NaN/inf (naming the layer).
    """
    omega = check_omega(omega, tmodel.p, allow_extrapolation=tmodel.config.allow_extrapolation)
    if omega.ndim != 1:
        raise ValueError(f"bake needs one omega of shape ({tmodel.p},), got {tuple(omega.shape)}")
    plain = copy.deepcopy(tmodel.base_model)
    omega = omega.to(next(plain.parameters()).device)
    _bake_children(plain, omega, {}, "")
    for name, module in list(plain.named_modules()):
        if parametrize.is_parametrized(module):
            _unparametrize(module, omega, name)
    for name, attrs in tmodel._restore.items():
        for attr, value in attrs.items():
            setattr(plain.get_submodule(name), attr, value)
    return plain


def _check_finite(tensors: Iterable[tuple[str, Tensor]], name: str, omega: Tensor) -> None:
    """Refuse a baked tensor with NaN/inf, naming it (``name`` is its module's)."""
    for tensor_name, tensor in tensors:
        if not torch.isfinite(tensor).all():
            raise ValueError(
                f"bake: {name or '<root>'}.{tensor_name} has NaN or inf at omega = {omega.tolist()} "
                "(the tunable weights are not finite there)"
            )


def _bake_children(
    module: nn.Module, omega: Tensor, baked: dict[int, tuple[nn.Module, nn.Module]], prefix: str
) -> None:
    """Replace every tunable layer below ``module`` by its plain layer at ``omega`` (shared layers once).

    Recursion reaches the layers inside a materialised :class:`TunableModule` as well. ``baked`` keeps each
    tunable layer alive next to its plain layer, so no id is reused by a later deep copy while baking.
    """
    for attr, child in list(module._modules.items()):
        name = f"{prefix}.{attr}" if prefix else attr
        if isinstance(child, TunableLayer | LayerContainer):
            if id(child) not in baked:
                plain = child.materialize(omega) if isinstance(child, TunableLayer) else child.plain()
                _check_finite(plain.named_parameters(), name, omega)
                baked[id(child)] = (child, plain)
                _bake_children(plain, omega, baked, name)
            setattr(module, attr, baked[id(child)][1])
        elif child is not None:
            _bake_children(child, omega, baked, name)


def _unparametrize(module: nn.Module, omega: Tensor, name: str) -> None:
    """Replace a (deep-copied) module's tunable tensors by plain parameters mixed at ``omega``.

    ``parametrize.remove_parametrizations`` would edit the parametrised class, which a deep copy shares
    with the original; restoring the plain class on this instance leaves the original untouched.
    """
    ours = {
        attr: plist for attr, plist in module.parametrizations.items() if isinstance(plist[0], TunableTensor)
    }
    if not ours:  # the network's own (weight_norm, …): baked through their inputs, kept as they are
        return
    if len(ours) < len(module.parametrizations):
        raise ValueError(
            f"bake: {name or '<root>'} has tunable tensors {sorted(ours)} beside parametrisations of its own "
            f"{sorted(set(module.parametrizations) - set(ours))}; make its layer tunable instead"
        )
    values = {}
    for attr, plist in ours.items():
        copies = tuple(getattr(plist, f"original{i}") for i in range(plist[0].kernels))
        values[attr] = plist[0].materialize(copies, omega)
    _check_finite(values.items(), name, omega)
    module.__class__ = module.__class__.__bases__[0]
    del module._modules["parametrizations"]
    for attr, value in values.items():
        module.register_parameter(attr, nn.Parameter(value))
