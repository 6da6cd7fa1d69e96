"""Deep Network Interpolation (Wang et al., CVPR 2019) as a tunable network.

DNI blends the weights of p networks of one architecture, fine-tuned from a common parent one objective at a
time: θ(ω) = Σ_i ω_i θ_i. That is exactly a tunable network whose i-th kernel copies are network i's weights
and whose φ is the identity (α = ω), so DNI gets everything a converted network has: ``model(x, omega=...)``
with shared or per-sample ω, :func:`tunify.bake`, save/load and the evaluation sweeps. The only difference
from the paper's tunable convolutions is the training protocol (one objective per copy, never jointly).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tunify._state_dict import load_state
from tunify.convert import TunableModel, convert
from tunify.layers import copy_state_keys, phi_parameters


def dni(models: Sequence[nn.Module], **convert_kwargs: Any) -> TunableModel:
    """A tunable network that computes DNI: at ω it runs the network with weights Σ_i ω_i θ_i.

    Args:
        models: p >= 2 networks of one architecture (same state-dict keys and shapes), e.g. copies of a
            pretrained network fine-tuned on one objective each. They are not modified.
        convert_kwargs: options of :func:`tunify.convert` choosing which tensors are interpolated (default:
            every supported layer). Tensors left out must be identical in all networks.

    Returns:
        A :class:`~tunify.TunableModel` with p = len(models) and φ the identity, so ``bake(model, e_i)``
        equals network i and ``bake(model, (0.5, 0.5))`` the network with averaged weights.

    Raises:
        ValueError: fewer than two networks, different architectures, or tensors that differ between the
            networks but are not converted (widen ``include``/``parameters``).

    Example:
        >>> interp = tunify.strategies.dni([net_fidelity, net_noise])
        >>> y = interp(x, omega=torch.tensor([0.75, 0.25]))
    """
    if len(models) < 2:
        raise ValueError(f"dni needs at least two networks to interpolate, got {len(models)}")
    p = len(models)
    states = [m.state_dict() for m in models]
    for i, state in enumerate(states[1:], start=1):
        shapes0 = {k: tuple(v.shape) for k, v in states[0].items()}
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != shapes0:
            differ = sorted(set(shapes0.items()) ^ set(shapes.items()))[:5]
            raise ValueError(f"dni: network {i} differs in architecture from network 0 (e.g. {differ})")
    converted = [convert(copy.deepcopy(m), p, **convert_kwargs) for m in models]
    tmodel = converted[0]
    copies = copy_state_keys(tmodel)
    sources = [c.state_dict() for c in converted]
    merged: dict[str, Tensor] = {}
    not_tunable = []
    for key, value in tmodel.state_dict().items():
        if key in copies:
            merged[key] = sources[copies[key]][key]
        else:
            if any(not torch.equal(value, s[key]) for s in sources[1:]):
                not_tunable.append(key)
            merged[key] = value
    if not_tunable:
        raise ValueError(
            f"dni: {len(not_tunable)} tensors differ between the networks but are not converted, e.g. "
            f"{not_tunable[:5]}; include them in the conversion (include=/parameters=)"
        )
    load_state(tmodel, merged)
    with torch.no_grad():
        for param in phi_parameters(tmodel):
            param.copy_(torch.eye(p) if param.ndim == 2 else torch.zeros(p))
    tmodel.info["strategy"] = "dni"
    return tmodel
