"""Find where a network computes convolutions and linear maps, with torch.fx.

Layers are found as modules; fx is what finds the *functional* call sites (``F.conv2d(x, self.weight)``)
that no module walk can see. Tracing runs on a deep copy (tracing can mutate a model: SwinIR's forward
assigns ``self.mean``). Where a module cannot be traced as a whole (shape-dependent control flow, as in
SwinIR's ``if self.input_resolution == x_size``), each of its children is traced on its own, down to the
layers, so a network with control flow is still analysed completely.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layers import factory_for

_FUNCTIONAL = {
    F.conv1d,
    F.conv2d,
    F.conv3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
    F.linear,
}


class _LayerLeafTracer(fx.Tracer):
    """Stops at every convertible layer (including subclasses such as timm's ``StdConv2d``)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return factory_for(m) is not None or super().is_leaf_module(m, module_qualified_name)


@dataclass
class CallSites:
    """What the analysis found.

    ``functional``: calling module name -> names (relative to it) of the parameters it passes to
    ``F.conv*``/``F.linear``.
    """

    functional: dict[str, list[str]] = field(default_factory=dict)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _record_functional(graph: fx.Graph, prefix: str, sites: CallSites) -> None:
    """Each F.conv*/F.linear call on a parameter, attributed to the innermost module that makes the call
    and owns the parameter (timm's BEiT passes ``self.qkv.weight`` from its attention module)."""
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in _FUNCTIONAL:
            continue
        callers = [_join(prefix, path) for path in node.meta.get("nn_module_stack", {})]
        for arg in [*node.args[1:3], node.kwargs.get("weight"), node.kwargs.get("bias")]:
            if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
                continue
            tensor = _join(prefix, arg.target)
            owners = [c for c in callers if tensor.startswith(c + ".")] if callers else []
            site = owners[-1] if owners else prefix
            names = sites.functional.setdefault(site, [])
            relative = tensor[len(site) + 1 :] if site else tensor
            if relative not in names:
                names.append(relative)


def _trace(module: nn.Module, prefix: str, sites: CallSites) -> None:
    try:
        graph = _LayerLeafTracer().trace(module)
    except Exception:  # any tracing failure: fall back to the children
        for name, child in module.named_children():
            if factory_for(child) is None:
                _trace(child, _join(prefix, name), sites)
        return
    _record_functional(graph, prefix, sites)


def find_call_sites(model: nn.Module) -> CallSites:
    """Trace a deep copy of ``model`` piece by piece and report its functional call sites."""
    sites = CallSites()
    with torch.no_grad():
        _trace(copy.deepcopy(model), "", sites)
    return sites
