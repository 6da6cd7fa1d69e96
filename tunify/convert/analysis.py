"""Find where a network computes convolutions and linear maps, with torch.fx.

Layers are found as modules; fx is what finds the *functional* call sites (``F.conv2d(x, self.weight)``)
that no module walk can see. Tracing runs on a deep copy (tracing can mutate a model: SwinIR's forward
assigns ``self.mean``). Where a module cannot be traced as a whole (shape-dependent control flow, as in
SwinIR's ``if self.input_resolution == x_size``), the trace goes on around it — the failing call becomes one
opaque node — and each of its children is traced on its own afterwards, down to the layers: a network with
control flow is still analysed completely, and each module is traced about once however deep the failure.
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
    """Stops at every convertible layer (including subclasses such as timm's ``StdConv2d``), and at every
    module whose forward cannot be traced: those are listed in ``untraced`` and what their partial trace
    recorded is listed in ``discarded``, so that only complete calls are analysed."""

    def __init__(self) -> None:
        super().__init__()
        self.untraced: list[str] = []
        self.discarded: set[fx.Node] = set()
        self._created: list[fx.Node] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return factory_for(m) is not None or super().is_leaf_module(m, module_qualified_name)

    def create_node(self, *args, **kwargs) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        self._created.append(node)
        return node

    def call_module(self, m: nn.Module, forward, args, kwargs):
        name = self.path_of_module(m)
        if self.is_leaf_module(m, name):
            return super().call_module(m, forward, args, kwargs)
        stack, created = dict(self.module_stack), len(self._created)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:  # any tracing failure: an opaque call here, its children traced on their own
            self.module_stack.clear()
            self.module_stack.update(stack)  # fx pops its module stack only on success
            self.discarded.update(self._created[created:])
            if name not in self.untraced:
                self.untraced.append(name)
            return self.create_proxy("call_module", name, args, kwargs)


@dataclass
class CallSites:
    """What the analysis found.

    ``functional``: calling module name -> names (relative to it) of the parameters it passes to
    ``F.conv*``/``F.linear``.
    """

    functional: dict[str, list[str]] = field(default_factory=dict)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _record_functional(
    graph: fx.Graph, module: nn.Module, prefix: str, sites: CallSites, discarded: set[fx.Node]
) -> None:
    """Each F.conv*/F.linear call on a parameter, attributed to the innermost module that makes the call
    and owns the parameter (timm's BEiT passes ``self.qkv.weight`` from its attention module). Buffers
    (fixed filters such as timm's ``BlurPool2d``) are not learned, so not made tunable."""
    parameters = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in _FUNCTIONAL or node in discarded:
            continue
        callers = [_join(prefix, path) for path in node.meta.get("nn_module_stack", {})]
        for arg in [*node.args[1:3], node.kwargs.get("weight"), node.kwargs.get("bias")]:
            if not (isinstance(arg, fx.Node) and arg.op == "get_attr" and arg.target in parameters):
                continue
            tensor = _join(prefix, arg.target)
            owners = [c for c in callers if tensor.startswith(c + ".")] if callers else []
            site = owners[-1] if owners else prefix
            names = sites.functional.setdefault(site, [])
            relative = tensor[len(site) + 1 :] if site else tensor
            if relative not in names:
                names.append(relative)


def _trace(module: nn.Module, prefix: str, sites: CallSites) -> None:
    tracer = _LayerLeafTracer()
    try:
        graph = tracer.trace(module)
    except Exception:  # the module's own code cannot be traced: fall back to its children
        untraced = [""]
    else:
        _record_functional(graph, module, prefix, sites, tracer.discarded)
        untraced = tracer.untraced
    for name in untraced:
        for child_name, child in module.get_submodule(name).named_children():
            if factory_for(child) is None and _holds_tensors(child):
                _trace(child, _join(_join(prefix, name), child_name), sites)


def _holds_tensors(module: nn.Module) -> bool:
    """A module without parameters or buffers passes none to a functional call: no need to trace it."""
    return next(module.parameters(), None) is not None or next(module.buffers(), None) is not None


def find_call_sites(model: nn.Module) -> CallSites:
    """Trace a deep copy of ``model`` piece by piece and report its functional call sites."""
    sites = CallSites()
    with torch.no_grad():
        _trace(copy.deepcopy(model), "", sites)
    return sites
